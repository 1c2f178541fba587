// Storage roles of the Batch node identity (batch.bicep), each on one container of the storage account, not on the
// account: the nodes may read jobs' code snapshots and read and write checkpoints, and nothing else there (not the
// host's leases and keys, not the deployment package). Deployed by main.bicep in the storage account's resource group
// when nodeProvider is azurebatch.
//
// - Storage Blob Data Reader on the snapshots container: a task's resource file (the code snapshot) is fetched with
//   the pool's identityReference;
// - Storage Blob Data Contributor on the checkpoints container: every pool mounts it with blobfuse through the same
//   identity (COMPUTEPLANE_CHECKPOINT_DIR is <workspace>/<job> there).

@description('Name of the storage account that holds both containers.')
param storageAccountName string

@description('Container of jobs\' code snapshots (COMPUTEPLANE_SNAPSHOT_CONTAINER).')
param snapshotContainerName string

@description('Container of jobs\' checkpoints (COMPUTEPLANE_CHECKPOINT_CONTAINER).')
param checkpointContainerName string

@description('Principal (object) id of the node identity every pool carries.')
param nodePrincipalId string

var storageBlobDataReader = '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource snapshotContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: snapshotContainerName
}

resource checkpointContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: checkpointContainerName
}

resource snapshotReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(snapshotContainer.id, nodePrincipalId, storageBlobDataReader)
  scope: snapshotContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataReader)
    principalId: nodePrincipalId
    principalType: 'ServicePrincipal'
    description: 'Batch nodes fetch jobs\' code snapshots'
  }
}

resource checkpointContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(checkpointContainer.id, nodePrincipalId, storageBlobDataContributor)
  scope: checkpointContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: nodePrincipalId
    principalType: 'ServicePrincipal'
    description: 'Batch nodes read and write jobs\' checkpoints (blobfuse mount)'
  }
}
