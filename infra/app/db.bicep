// Cosmos DB for NoSQL, serverless, Entra ID only: one database, one container (DESIGN.md §4).
// Documents are typed (`type`: cluster | job | quota ...) and partitioned by workspace; the timer
// finds the clusters due for reconcile with the composite index (type, next_reconcile_at),
// never with a scan of every cluster.

@description('Name of the Cosmos DB account (3-44 lowercase letters, digits and hyphens, globally unique).')
@minLength(3)
@maxLength(44)
param accountName string

@description('Azure region of the account (its single write region).')
param location string

@description('Tags applied to the account.')
param tags object = {}

@description('Name of the SQL database; the code reads it from COSMOS_DATABASE.')
param databaseName string = 'computeplane'

@description('Name of the container holding cluster, job and quota documents; the code reads it from COSMOS_CONTAINER.')
param containerName string = 'state'

@description('Partition key path of the container. The code writes `workspace` on every document.')
param partitionKeyPath string = '/workspace'

resource account 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' = {
  // checkov:skip=CKV_AZURE_99: the Flex Consumption app is not VNet-integrated in this template, so there is no network to restrict to; access is Entra ID only (disableLocalAuth)
  // checkov:skip=CKV_AZURE_101: the app (no VNet integration in this template) reaches Cosmos DB over its public endpoint; keys are disabled and only the app identity has a data role
  name: accountName
  location: location
  tags: tags
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    capabilities: [
      {
        name: 'EnableServerless'
      }
    ]
    consistencyPolicy: {
      defaultConsistencyLevel: 'Session'
    }
    locations: [
      {
        locationName: location
        failoverPriority: 0
        isZoneRedundant: false
      }
    ]
    backupPolicy: {
      type: 'Continuous'
      continuousModeProperties: {
        tier: 'Continuous7Days'
      }
    }
    disableLocalAuth: true
    disableKeyBasedMetadataWriteAccess: true
    minimalTlsVersion: 'Tls12'
    publicNetworkAccess: 'Enabled'
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-05-15' = {
  parent: account
  name: databaseName
  properties: {
    resource: {
      id: databaseName
    }
  }
}

resource container 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = {
  parent: database
  name: containerName
  properties: {
    resource: {
      id: containerName
      partitionKey: {
        paths: [
          partitionKeyPath
        ]
        kind: 'Hash'
        version: 2
      }
      // Tombstones of deleted clusters carry their own `ttl`; -1 turns TTL on without expiring anything else.
      defaultTtl: -1
      // The same policy as INDEXING_POLICY in shared/adapters/cosmos_store.py (a test keeps them equal).
      indexingPolicy: {
        indexingMode: 'consistent'
        automatic: true
        includedPaths: [
          {
            path: '/*'
          }
        ]
        // Never queried, and rewritten on every write of a busy cluster: indexing them would only cost RUs.
        excludedPaths: [
          {
            path: '/"_etag"/?'
          }
          {
            path: '/nodes/*'
          }
          {
            path: '/jobs/*'
          }
          {
            path: '/applied_events/?'
          }
          {
            path: '/applied_events/*'
          }
          {
            path: '/history/*'
          }
          {
            path: '/allocations/*'
          }
          {
            path: '/incarnations/*'
          }
          {
            path: '/node_history/?'
          }
          {
            path: '/quota_booked/*'
          }
        ]
        compositeIndexes: [
          // WHERE c.type = 'cluster' AND c.next_reconcile_at <= @now ORDER BY c.next_reconcile_at
          [
            {
              path: '/type'
              order: 'ascending'
            }
            {
              path: '/next_reconcile_at'
              order: 'ascending'
            }
          ]
          // WHERE c.type = 'job' AND c.state = @queued AND c.scheduled = false AND c.submitted_at <= @before
          [
            {
              path: '/type'
              order: 'ascending'
            }
            {
              path: '/state'
              order: 'ascending'
            }
            {
              path: '/scheduled'
              order: 'ascending'
            }
            {
              path: '/submitted_at'
              order: 'ascending'
            }
          ]
        ]
      }
    }
  }
}

@description('Resource name of the account.')
output accountName string = account.name

@description('Resource id of the account.')
output accountId string = account.id

@description('Document endpoint of the account, the value of COSMOS__accountEndpoint.')
output endpoint string = account.properties.documentEndpoint

@description('Name of the database.')
output databaseName string = database.name

@description('Name of the container.')
output containerName string = container.name
