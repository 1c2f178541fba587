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
      indexingPolicy: {
        indexingMode: 'consistent'
        automatic: true
        // '/*' keeps ad-hoc queries cheap; the three paths the reconcile loop depends on are listed
        // explicitly so they stay indexed if '/*' is ever narrowed to cut write cost.
        includedPaths: [
          {
            path: '/type/?'
          }
          {
            path: '/workspace/?'
          }
          {
            path: '/next_reconcile_at/?'
          }
          {
            path: '/*'
          }
        ]
        excludedPaths: [
          {
            path: '/"_etag"/?'
          }
        ]
        // WHERE c.type = 'cluster' AND c.next_reconcile_at <= @now ORDER BY c.next_reconcile_at
        compositeIndexes: [
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
