// Storage for the Functions host (AzureWebJobsStorage: timer and singleton leases, host keys,
// diagnostics) and the Flex Consumption deployment package. Entra ID only: shared keys are off,
// the app reaches it through its user-assigned identity (see rbac.bicep).

@description('Name of the storage account (3-24 lowercase letters and digits, globally unique).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region of the account.')
param location string

@description('Tags applied to the account.')
param tags object = {}

@description('Blob container that holds the Flex Consumption deployment package.')
@minLength(3)
@maxLength(63)
param deploymentContainerName string

@description('Also create the checkpoints container (COMPUTEPLANE_CHECKPOINT_CONTAINER) that every Batch pool mounts; only the Batch node provider uses it.')
param createCheckpointContainer bool = false

@description('Replication of the account. The host data is ephemeral (leases, keys, packages), so LRS is enough.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
])
param skuName string = 'Standard_LRS'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: the Functions host (no VNet integration in this template) reaches its storage over the public endpoint; shared keys are off, only Entra ID with RBAC
  // checkov:skip=CKV_AZURE_59: same reason as CKV_AZURE_35; anonymous blob access is disabled (allowBlobPublicAccess false)
  // checkov:skip=CKV_AZURE_206: host storage holds only leases, host keys and deployment packages, all recreated by a redeploy; geo-replication would add cost, not safety
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    dnsEndpointType: 'Standard'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Jobs' code snapshots (COMPUTEPLANE_SNAPSHOT_CONTAINER): one blob per workspace and content hash. The app's
// identity already holds Storage Blob Data Owner on this account (rbac.bicep).
resource snapshotContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: 'snapshots'
  properties: {
    publicAccess: 'None'
  }
}

// Jobs' checkpoints on Batch (COMPUTEPLANE_CHECKPOINT_CONTAINER): every pool mounts it with blobfuse through the
// node identity (node-storage-rbac.bicep), so a checkpoint survives an attempt's move to another node.
resource checkpointContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = if (createCheckpointContainer) {
  parent: blobService
  name: 'checkpoints'
  properties: {
    publicAccess: 'None'
  }
}

@description('Name of the container of jobs\' checkpoints (empty without createCheckpointContainer).')
output checkpointContainerName string = createCheckpointContainer ? checkpointContainer.name : ''

@description('Name of the container of jobs\' code snapshots.')
output snapshotContainerName string = snapshotContainer.name

@description('Resource name of the account, the value of AzureWebJobsStorage__accountName.')
output name string = storage.name

@description('Resource id of the account.')
output id string = storage.id

@description('Blob endpoint of the account (https://<name>.blob.core.windows.net/).')
output blobEndpoint string = storage.properties.primaryEndpoints.blob

@description('Name of the deployment container.')
output deploymentContainerName string = deploymentContainer.name
