// Node provisioning rights for the app's identity, on the resource group where cluster nodes
// (VMs / scale sets, NICs, disks, public IPs, NSGs, system-assigned node identities) are created.
// Deployed by main.bicep with `scope: resourceGroup(nodeResourceGroupName)`.
//
// Why a role here at all: scaling a cluster up and down is ARM writes made by the control plane
// itself, with its managed identity (DESIGN.md §6). The grant is scoped to one resource group so
// the identity can never touch the control plane's own resources or anything else.

@description('Principal (object) id of the app\'s user-assigned identity.')
param appPrincipalId string

@description('Built-in role granted on this resource group: Contributor (default: the app may also create the networks, public IPs and NSGs that vnet-less clusters, enable_node_public_ip and remote_login_port_public_access need) or VirtualMachineContributor (least privilege: VMs, disks and NICs only, in networks that already exist).')
@allowed([
  'Contributor'
  'VirtualMachineContributor'
])
param provisioningRole string = 'Contributor'

@description('Also grant Managed Identity Operator here, so clusters can be given user-assigned identities that live in this resource group (assigning an identity to a VM needs .../assign/action on it; Virtual Machine Contributor lacks it).')
param grantManagedIdentityOperator bool = true

var roleIds = {
  Contributor: 'b24988ac-6180-42dd-ab2e-4da4d60c2bf7'
  VirtualMachineContributor: '9980e02c-c2be-4d73-94e8-173b1dc7cf3c'
}
var managedIdentityOperator = 'f1a07417-d97a-45cb-824c-7a7467783830'

resource provisioner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, appPrincipalId, roleIds[provisioningRole])
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds[provisioningRole])
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'ComputePlane provisions and removes cluster nodes in this resource group'
  }
}

resource identityOperator 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantManagedIdentityOperator) {
  name: guid(resourceGroup().id, appPrincipalId, managedIdentityOperator)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', managedIdentityOperator)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'ComputePlane assigns user-assigned identities of this resource group to cluster nodes'
  }
}

@description('Resource group the grants apply to.')
output resourceGroupName string = resourceGroup().name
