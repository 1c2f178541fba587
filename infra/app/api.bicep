// The Function App that hosts ComputePlane (function_app.py): Flex Consumption, Python on Linux,
// one user-assigned identity for everything (host storage, Service Bus, Cosmos DB, App Insights,
// node provisioning), and app settings that hold endpoints and client ids only: no keys.

@description('Name of the Function App (globally unique host name <name>.azurewebsites.net).')
@minLength(2)
@maxLength(60)
param name string

@description('Name of the Flex Consumption plan.')
param planName string

@description('Azure region of the plan and the app (must offer Flex Consumption).')
param location string

@description('Tags applied to the plan and the app.')
param tags object = {}

@description('azd service name from azure.yaml; azd finds the app to deploy to by this tag.')
param serviceName string = 'api'

@description('Python version of the Functions runtime.')
@allowed([
  '3.10'
  '3.11'
  '3.12'
])
param pythonVersion string = '3.11'

@description('Memory of one instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Upper bound on the number of instances Flex Consumption scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string

@description('Client id of that identity: the value of every *__clientId setting and of AZURE_CLIENT_ID.')
param identityClientId string

@description('Name of the host storage account (AzureWebJobsStorage, identity-based).')
param storageAccountName string

@description('Blob container of the storage account that holds the deployment package.')
param deploymentContainerName string

@description('Blob container of the storage account that holds jobs\' code snapshots (COMPUTEPLANE_SNAPSHOT_CONTAINER).')
param snapshotContainerName string = 'snapshots'

@description('Name of the Application Insights component (existing, local auth disabled).')
param applicationInsightsName string

@description('Service Bus host name, e.g. sb-x.servicebus.windows.net.')
param serviceBusFullyQualifiedNamespace string

@description('Cosmos DB document endpoint, e.g. https://cosmos-x.documents.azure.com:443/.')
param cosmosEndpoint string

@description('Cosmos DB database name.')
param cosmosDatabaseName string

@description('Cosmos DB container name.')
param cosmosContainerName string

@description('Location of the ComputePlane workspace: the default region of new clusters (COMPUTEPLANE_WORKSPACE_LOCATION).')
param workspaceLocation string

@description('Resource group in which the app provisions cluster nodes (COMPUTEPLANE_NODE_RESOURCE_GROUP).')
param nodeResourceGroupName string

@description('Who provisions nodes (COMPUTEPLANE_PROVIDER): azurebatch or local.')
@allowed([
  'azurebatch'
  'local'
])
param nodeProvider string = 'azurebatch'

@description('Batch account that provisions the nodes (COMPUTEPLANE_BATCH_ACCOUNT); empty with nodeProvider local.')
param batchAccountName string = ''

@description('Data-plane endpoint of that account, https://... (COMPUTEPLANE_BATCH_ACCOUNT_ENDPOINT).')
param batchAccountEndpoint string = ''

@description('Ubuntu marketplace image of the nodes, publisher:offer:sku:version (COMPUTEPLANE_BATCH_NODE_IMAGE).')
param batchNodeImage string = 'canonical:ubuntu-24_04-lts:server:latest'

@description('Resource id of the user-assigned identity every Batch pool carries to fetch code snapshots and mount checkpoints (COMPUTEPLANE_BATCH_NODE_IDENTITY); empty with nodeProvider local.')
param batchNodeIdentityId string = ''

@description('Blob container of the storage account that every Batch pool mounts for jobs\' checkpoints (COMPUTEPLANE_CHECKPOINT_CONTAINER); empty: checkpoints stay on the node.')
param checkpointContainerName string = ''

@description('Audience of the ARM-shaped API: the app id URI of ComputePlane\'s Entra app registration (COMPUTEPLANE_ARM_AUDIENCE); empty: the ARM paths answer that they are not configured.')
param armAudience string = ''

@description('Share of traces recorded where they start (OTEL_TRACES_SAMPLER_ARG of parentbased_trace_id_ratio, as azure-monitor-opentelemetry spells parentbased_traceidratio): an HTTP request or an event from outside; every process after follows that decision, so a trace is kept or dropped whole.')
param traceSamplingRatio string = '0.05'

@description('Extra app settings as [{ name: ..., value: ... }] (e.g. quota overrides); names must not repeat the ones set below.')
param extraAppSettings array = []

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy for Flex Consumption exists only in some regions and needs always-ready capacity; a control plane that heals by reconcile tolerates a zone outage of minutes
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: the HTTP API (/api) serves the CLI, scripts and other systems over the internet; private endpoints and VNet integration are out of scope of this template
  // checkov:skip=CKV_AZURE_17: callers authenticate with tokens/function keys, not with TLS client certificates; requiring them would break the CLI and the Python client
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales to zero and adds instances on demand; always-ready instances would bill an idle control plane
  // checkov:skip=CKV_AZURE_213: the app scales to zero; an App Service health-check probe is not part of the Flex Consumption scale model (the platform replaces failed instances) and the per-minute reconcile timer is the liveness signal
  // checkov:skip=CKV_AZURE_78: Flex Consumption has no FTP/FTPS publishing endpoint; basic publishing credentials are disabled below (ftpBasicAuth, scmBasicAuth)
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': serviceName
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      http20Enabled: true
      // The names are a contract with shared/config.py and the trigger bindings
      // (connection="ServiceBusConnection"); tests/infra/test_infra.py checks them.
      appSettings: concat([
        {
          name: 'AzureWebJobsStorage__accountName'
          value: storage.name
        }
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'AzureWebJobsStorage__clientId'
          value: identityClientId
        }
        {
          name: 'ServiceBusConnection__fullyQualifiedNamespace'
          value: serviceBusFullyQualifiedNamespace
        }
        {
          name: 'ServiceBusConnection__credential'
          value: 'managedidentity'
        }
        {
          name: 'ServiceBusConnection__clientId'
          value: identityClientId
        }
        {
          name: 'COSMOS__accountEndpoint'
          value: cosmosEndpoint
        }
        {
          name: 'COSMOS__credential'
          value: 'managedidentity'
        }
        {
          name: 'COSMOS__clientId'
          value: identityClientId
        }
        {
          name: 'COSMOS_DATABASE'
          value: cosmosDatabaseName
        }
        {
          name: 'COSMOS_CONTAINER'
          value: cosmosContainerName
        }
        {
          name: 'AZURE_CLIENT_ID'
          value: identityClientId
        }
        {
          name: 'AZURE_SUBSCRIPTION_ID'
          value: subscription().subscriptionId
        }
        {
          name: 'COMPUTEPLANE_STORE'
          value: 'cosmos'
        }
        {
          name: 'COMPUTEPLANE_BUS'
          value: 'servicebus'
        }
        {
          // One message per call: the Service Bus extension runs batch triggers on sessions one session at a
          // time per instance (see shared/config.py queue_batches_on); the local host batches.
          name: 'COMPUTEPLANE_QUEUE_BATCHES'
          value: 'off'
        }
        {
          name: 'COMPUTEPLANE_WORKSPACE_LOCATION'
          value: workspaceLocation
        }
        {
          name: 'COMPUTEPLANE_NODE_RESOURCE_GROUP'
          value: nodeResourceGroupName
        }
        {
          name: 'COMPUTEPLANE_SNAPSHOT_ACCOUNT_URL'
          value: storage.properties.primaryEndpoints.blob
        }
        {
          name: 'COMPUTEPLANE_SNAPSHOT_CONTAINER'
          value: snapshotContainerName
        }
        {
          name: 'COMPUTEPLANE_PROVIDER'
          value: nodeProvider
        }
        {
          name: 'COMPUTEPLANE_BATCH_ACCOUNT'
          value: batchAccountName
        }
        {
          name: 'COMPUTEPLANE_BATCH_ACCOUNT_ENDPOINT'
          value: batchAccountEndpoint
        }
        {
          name: 'COMPUTEPLANE_BATCH_NODE_IMAGE'
          value: batchNodeImage
        }
        {
          name: 'COMPUTEPLANE_BATCH_NODE_IDENTITY'
          value: batchNodeIdentityId
        }
        {
          name: 'COMPUTEPLANE_CHECKPOINT_CONTAINER'
          value: checkpointContainerName
        }
        {
          // The ARM-shaped API (shared/api/arm/context.py) checks Entra ID tokens of this tenant for this audience.
          name: 'COMPUTEPLANE_ARM_AUTH'
          value: 'entra'
        }
        {
          name: 'COMPUTEPLANE_ARM_TENANT_ID'
          value: tenant().tenantId
        }
        {
          name: 'COMPUTEPLANE_ARM_AUDIENCE'
          value: armAudience
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: applicationInsights.properties.ConnectionString
        }
        {
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'Authorization=AAD;ClientId=${identityClientId}'
        }
        {
          // Parent-based rather than the distro's default (5 traces a second, decided again in each process): the
          // handler follows the sampled flag its event carries, and a dropped trace costs little (README, Telemetry).
          name: 'OTEL_TRACES_SAMPLER'
          value: 'parentbased_trace_id_ratio'
        }
        {
          name: 'OTEL_TRACES_SAMPLER_ARG'
          value: traceSamplingRatio
        }
      ], extraAppSettings)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
    }
  }
}

// Deployments (azd, az functionapp deploy) authenticate with Entra ID; no publishing passwords.
resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

@description('Name of the Function App.')
output name string = functionApp.name

@description('Base URL of the Function App; the HTTP API is under /api.')
output uri string = 'https://${functionApp.properties.defaultHostName}'
