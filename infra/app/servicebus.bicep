// Service Bus: the three CloudEvents queues of ComputePlane (DESIGN.md §1, §4).
// Sessions keep the messages of one cluster in order (session id = workspace/cluster);
// duplicate detection drops a re-sent message with the same MessageId (the CloudEvent id)
// inside the detection window; failures dead-letter after maxDeliveryCount, never silently.

@description('Name of the Service Bus namespace (6-50 characters, globally unique).')
@minLength(6)
@maxLength(50)
param name string

@description('Azure region of the namespace.')
param location string

@description('Tags applied to the namespace.')
param tags object = {}

@description('How long an undelivered message lives before it is dead-lettered (ISO 8601 duration).')
param messageTimeToLive string = 'P14D'

// The queue names are a contract with the code (shared/config.py, functions/): keep them in sync.
var queueNames = [
  'cluster-events'
  'job-events'
  'scale-events'
]

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

resource queues 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = [for queueName in queueNames: {
  parent: namespace
  name: queueName
  properties: {
    requiresSession: true
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT10M'
    maxDeliveryCount: 10
    deadLetteringOnMessageExpiration: true
    lockDuration: 'PT1M'
    defaultMessageTimeToLive: messageTimeToLive
    enableBatchedOperations: true
    enablePartitioning: false
    maxSizeInMegabytes: 1024
  }
}]

// Events that can never be applied (invalid CloudEvents) are sent here with their reason by the functions
// (shared/adapters/servicebus_bus.py): the plain trigger binding cannot dead-letter the message it holds.
// No sessions: dead letters carry none. Kept long so people can inspect them.
resource deadLetterQueue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: namespace
  name: 'deadletter'
  properties: {
    requiresSession: false
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT10M'
    maxDeliveryCount: 10
    lockDuration: 'PT1M'
    defaultMessageTimeToLive: 'P30D'
    enablePartitioning: false
    maxSizeInMegabytes: 1024
  }
}

@description('Resource name of the namespace.')
output name string = namespace.name

@description('Resource id of the namespace.')
output id string = namespace.id

@description('Host name of the namespace (e.g. sb-x.servicebus.windows.net), the value of ServiceBusConnection__fullyQualifiedNamespace.')
output fullyQualifiedNamespace string = split(split(namespace.properties.serviceBusEndpoint, '/')[2], ':')[0]

@description('The queue names, in the order they were declared.')
output queueNames array = queueNames
