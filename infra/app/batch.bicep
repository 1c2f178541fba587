// The Azure Batch account that provisions cluster nodes (COMPUTEPLANE_PROVIDER=azurebatch): one pool per
// cluster, created by the app with its managed identity, and the roles that identity needs for it.
// Deployed by main.bicep with `scope: resourceGroup(nodeResourceGroupName)`, next to the nodes' other resources.
//
// Roles given to the app identity here (see infra/README.md, "What provisions nodes"):
// - Azure Batch Account Contributor on the account: create, update and delete pools (management plane);
// - Azure Batch Data Contributor on the account: jobs, tasks, task files and removing nodes (data plane);
// - Managed Identity Contributor on this resource group (grantClusterIdentityContributor): a SystemAssigned
//   cluster gets a user-assigned identity of its own, created here with the pool and deleted with the cluster;
// - Managed Identity Operator on this resource group is granted by provisioning-rbac.bicep: attaching an identity
//   to a pool needs .../userAssignedIdentities/assign/action on it;
// - Managed Identity Operator on the node identity below (always, scoped to that one identity): every pool carries
//   it (COMPUTEPLANE_BATCH_NODE_IDENTITY), so the app must be allowed to assign it even when
//   grantManagedIdentityOperator is off.
//
// The node identity reads jobs' code snapshots and reads and writes checkpoints on the nodes; its storage roles are
// given on the two containers by node-storage-rbac.bicep, in the resource group of the storage account.

@description('Name of the Batch account (3-24 lower-case letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Region of the Batch account: the region the clusters\' nodes run in.')
param location string

@description('Tags of the account.')
param tags object = {}

@description('Principal (object) id of the app\'s user-assigned identity.')
param appPrincipalId string

@description('Grant Managed Identity Contributor on this resource group, so SystemAssigned clusters get their own user-assigned identity (without it, such clusters fail to get a pool).')
param grantClusterIdentityContributor bool = true

@description('Name of the user-assigned identity every pool carries to fetch code snapshots and mount checkpoints.')
@minLength(3)
@maxLength(128)
param nodeIdentityName string

var batchAccountContributor = '29fe4964-1e60-436b-bd3a-77fd4c178b3c'
var batchDataContributor = '6aaa78f1-f7de-44ca-8722-c64a23943cae'
var managedIdentityContributor = 'e40ec5ca-96e0-45a2-b4ff-59039f2c2b59'
var managedIdentityOperator = 'f1a07417-d97a-45cb-824c-7a7467783830'

resource account 'Microsoft.Batch/batchAccounts@2024-07-01' = {
  // checkov:skip=CKV_AZURE_76: the account holds no customer data at rest beyond task output of minutes; customer-managed keys need a Key Vault this template does not deploy
  name: name
  location: location
  tags: tags
  properties: {
    poolAllocationMode: 'BatchService'
    allowedAuthenticationModes: [
      'AAD'
    ]
    publicNetworkAccess: 'Enabled'
  }
}

resource accountContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, appPrincipalId, batchAccountContributor)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', batchAccountContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'ComputePlane creates, resizes and deletes one pool per cluster'
  }
}

resource dataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, appPrincipalId, batchDataContributor)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', batchDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'ComputePlane runs each job attempt as a Batch task and removes chosen nodes'
  }
}

resource identityContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantClusterIdentityContributor) {
  name: guid(resourceGroup().id, appPrincipalId, managedIdentityContributor)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', managedIdentityContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'ComputePlane creates and deletes the identities of SystemAssigned clusters'
  }
}

resource nodeIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: nodeIdentityName
  location: location
  tags: tags
}

resource nodeIdentityOperator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(nodeIdentity.id, appPrincipalId, managedIdentityOperator)
  scope: nodeIdentity
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', managedIdentityOperator)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'ComputePlane assigns the node identity to every pool it creates'
  }
}

@description('Resource id of the node identity (COMPUTEPLANE_BATCH_NODE_IDENTITY).')
output nodeIdentityId string = nodeIdentity.id

@description('Principal (object) id of the node identity, for its storage roles.')
output nodeIdentityPrincipalId string = nodeIdentity.properties.principalId

@description('Name of the Batch account (COMPUTEPLANE_BATCH_ACCOUNT).')
output name string = account.name

@description('Data-plane endpoint of the account (COMPUTEPLANE_BATCH_ACCOUNT_ENDPOINT).')
output endpoint string = 'https://${account.properties.accountEndpoint}'
