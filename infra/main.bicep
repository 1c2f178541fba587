// ComputePlane on Azure: the Function App (Flex Consumption, Python) with one user-assigned
// managed identity, Service Bus with the three CloudEvents queues, Cosmos DB (serverless),
// host storage, Application Insights, and the role assignments that tie them together.
// No keys anywhere: every resource has local/shared-key auth disabled; see infra/README.md.
//
//   azd up
//   az deployment group create -g <rg> -f infra/main.bicep -p environmentName=<env> ...

targetScope = 'resourceGroup'

@description('Name of the environment (e.g. dev, prod; azd sets it from AZURE_ENV_NAME). Seeds the unique suffix of every resource name and the azd-env-name tag.')
@minLength(1)
@maxLength(64)
param environmentName string

@description('Region of every resource. Must offer the Flex Consumption plan (az functionapp list-flexconsumption-locations).')
@minLength(1)
param location string = resourceGroup().location

@description('Region of the ComputePlane workspace: the default location of new clusters (COMPUTEPLANE_WORKSPACE_LOCATION). Empty: the deployment location.')
param workspaceLocation string = ''

@description('Existing resource group in which ComputePlane creates cluster nodes; the app identity gets the provisioning role there. Empty: this resource group (fine for a trial, a dedicated group is recommended).')
param nodeResourceGroupName string = ''

@description('Role of the app identity on the node resource group: Contributor or VirtualMachineContributor. Empty: Contributor on a dedicated node group, VirtualMachineContributor when nodes share this resource group (so the app cannot modify its own database, queues or storage).')
@allowed([
  ''
  'Contributor'
  'VirtualMachineContributor'
])
param nodeProvisioningRole string = ''

@description('Also grant Managed Identity Operator on the node resource group, so clusters can use user-assigned identities that live there.')
param grantManagedIdentityOperator bool = true

@description('Who provisions nodes (COMPUTEPLANE_PROVIDER): azurebatch (a Batch account is deployed in the node resource group, one pool per cluster) or local (nodes are processes of the Functions host: for trials only).')
@allowed([
  'azurebatch'
  'local'
])
param nodeProvider string = 'azurebatch'

@description('Ubuntu marketplace image of the Batch nodes, publisher:offer:sku:version (COMPUTEPLANE_BATCH_NODE_IMAGE).')
param batchNodeImage string = 'canonical:ubuntu-24_04-lts:server:latest'

@description('Grant Managed Identity Contributor on the node resource group, so SystemAssigned clusters get a user-assigned identity of their own there (Batch pools take user-assigned identities only).')
param grantClusterIdentityContributor bool = true

@description('Audience of the ARM-shaped API (COMPUTEPLANE_ARM_AUDIENCE): the app id URI of the Entra app registration whose app roles (ComputePlane.All, Workspace.<name>) callers\' tokens carry, e.g. api://computeplane-<env>; create it first (infra/README.md, "The ARM-shaped API"). Empty: the ARM paths answer that the API is not configured, the rest of the app runs.')
param armAudience string = ''

@description('Also grant Azure Service Bus Data Owner to the app identity (only if the scale controller reports a missing Manage claim).')
param grantServiceBusDataOwner bool = false

@description('Principal (object) id of a developer or CI identity that gets data access for debugging (azd sets AZURE_PRINCIPAL_ID). Empty: none.')
param principalId string = ''

@description('Type of principalId.')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param principalType string = 'User'

@description('Python version of the Functions runtime.')
@allowed([
  '3.10'
  '3.11'
  '3.12'
])
param pythonVersion string = '3.11'

@description('Memory of one Function App instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Maximum number of Function App instances.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Extra Function App settings as [{ name: ..., value: ... }] (e.g. quota overrides read by shared/config.py).')
param extraAppSettings array = []

@description('Tags added to every resource.')
param tags object = {}

// Contract with the code (shared/config.py): database and container names.
var cosmosDatabaseName = 'computeplane'
var cosmosContainerName = 'state'

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName, location))
var allTags = union(tags, {
  'azd-env-name': environmentName
  application: 'computeplane'
})
var functionAppName = 'func-cp-${resourceToken}'
var deploymentContainerName = 'app-package-${resourceToken}'
var nodeGroupName = empty(nodeResourceGroupName) ? resourceGroup().name : nodeResourceGroupName
var nodesShareThisGroup = toLower(nodeGroupName) == toLower(resourceGroup().name)
var defaultProvisioningRole = nodesShareThisGroup ? 'VirtualMachineContributor' : 'Contributor'
var isVmContributor = nodeProvisioningRole == 'VirtualMachineContributor'
var effectiveProvisioningRole = nodeProvisioningRole == 'Contributor' ? 'Contributor' : (isVmContributor ? 'VirtualMachineContributor' : defaultProvisioningRole)

resource appIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-cp-${resourceToken}'
  location: location
  tags: allTags
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    logAnalyticsName: 'log-cp-${resourceToken}'
    applicationInsightsName: 'appi-cp-${resourceToken}'
    location: location
    tags: allTags
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  params: {
    name: 'stcp${resourceToken}'
    location: location
    tags: allTags
    deploymentContainerName: deploymentContainerName
    createCheckpointContainer: nodeProvider == 'azurebatch'
  }
}

module serviceBus 'app/servicebus.bicep' = {
  name: 'servicebus'
  params: {
    name: 'sb-cp-${resourceToken}'
    location: location
    tags: allTags
  }
}

module db 'app/db.bicep' = {
  name: 'db'
  params: {
    accountName: 'cosmos-cp-${resourceToken}'
    location: location
    tags: allTags
    databaseName: cosmosDatabaseName
    containerName: cosmosContainerName
    partitionKeyPath: '/workspace'
  }
}

module api 'app/api.bicep' = {
  name: 'api'
  params: {
    name: functionAppName
    planName: 'plan-cp-${resourceToken}'
    location: location
    tags: allTags
    serviceName: 'api'
    pythonVersion: pythonVersion
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    identityId: appIdentity.id
    identityClientId: appIdentity.properties.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: storage.outputs.deploymentContainerName
    snapshotContainerName: storage.outputs.snapshotContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    serviceBusFullyQualifiedNamespace: serviceBus.outputs.fullyQualifiedNamespace
    cosmosEndpoint: db.outputs.endpoint
    cosmosDatabaseName: db.outputs.databaseName
    cosmosContainerName: db.outputs.containerName
    workspaceLocation: empty(workspaceLocation) ? location : workspaceLocation
    nodeResourceGroupName: nodeGroupName
    nodeProvider: nodeProvider
    batchAccountName: nodeProvider == 'azurebatch' ? batch.outputs.name : ''
    batchAccountEndpoint: nodeProvider == 'azurebatch' ? batch.outputs.endpoint : ''
    batchNodeImage: batchNodeImage
    batchNodeIdentityId: nodeProvider == 'azurebatch' ? batch.outputs.nodeIdentityId : ''
    checkpointContainerName: storage.outputs.checkpointContainerName
    armAudience: armAudience
    extraAppSettings: extraAppSettings
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  params: {
    appPrincipalId: appIdentity.properties.principalId
    developerPrincipalId: principalId
    developerPrincipalType: principalType
    storageAccountName: storage.outputs.name
    serviceBusNamespaceName: serviceBus.outputs.name
    grantServiceBusDataOwner: grantServiceBusDataOwner
    cosmosAccountName: db.outputs.accountName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
  }
}

module batch 'app/batch.bicep' = if (nodeProvider == 'azurebatch') {
  name: 'batch'
  scope: resourceGroup(nodeGroupName)
  params: {
    name: 'batchcp${resourceToken}'
    location: empty(workspaceLocation) ? location : workspaceLocation
    tags: allTags
    appPrincipalId: appIdentity.properties.principalId
    grantClusterIdentityContributor: grantClusterIdentityContributor
    nodeIdentityName: 'id-cp-nodes-${resourceToken}'
  }
}

// The node identity's roles on the snapshots and checkpoints containers, where the storage account lives.
module nodeStorageRbac 'app/node-storage-rbac.bicep' = if (nodeProvider == 'azurebatch') {
  name: 'node-storage-rbac'
  params: {
    storageAccountName: storage.outputs.name
    snapshotContainerName: storage.outputs.snapshotContainerName
    checkpointContainerName: storage.outputs.checkpointContainerName
    nodePrincipalId: nodeProvider == 'azurebatch' ? batch.outputs.nodeIdentityPrincipalId : ''
  }
}

module provisioningRbac 'app/provisioning-rbac.bicep' = {
  name: 'provisioning-rbac'
  scope: resourceGroup(nodeGroupName)
  params: {
    appPrincipalId: appIdentity.properties.principalId
    provisioningRole: effectiveProvisioningRole
    grantManagedIdentityOperator: grantManagedIdentityOperator
  }
}

// azd writes these outputs to .azure/<env>/.env; the names match the app settings so a local
// process (computeplane CLI, contract tests) can reach the deployed resources with `az login`.
@description('Region of the deployment.')
output AZURE_LOCATION string = location

@description('Tenant of the deployment.')
output AZURE_TENANT_ID string = tenant().tenantId

@description('Name of the Function App (azd service api).')
output SERVICE_API_NAME string = api.outputs.name

@description('Base URL of the Function App; the HTTP API is under /api.')
output SERVICE_API_URI string = api.outputs.uri

@description('Client id of the app identity (not exported as AZURE_CLIENT_ID, which would redirect local credentials).')
output API_IDENTITY_CLIENT_ID string = appIdentity.properties.clientId

@description('Service Bus host name.')
output ServiceBusConnection__fullyQualifiedNamespace string = serviceBus.outputs.fullyQualifiedNamespace

@description('Cosmos DB document endpoint.')
output COSMOS__accountEndpoint string = db.outputs.endpoint

@description('Cosmos DB database name.')
output COSMOS_DATABASE string = db.outputs.databaseName

@description('Cosmos DB container name.')
output COSMOS_CONTAINER string = db.outputs.containerName

@description('Resource group of the cluster nodes.')
output COMPUTEPLANE_NODE_RESOURCE_GROUP string = nodeGroupName

@description('Resource id of the identity every Batch pool carries (empty with nodeProvider local).')
output COMPUTEPLANE_BATCH_NODE_IDENTITY string = nodeProvider == 'azurebatch' ? batch.outputs.nodeIdentityId : ''

@description('Batch account that provisions the nodes (empty with nodeProvider local).')
output COMPUTEPLANE_BATCH_ACCOUNT string = nodeProvider == 'azurebatch' ? batch.outputs.name : ''
