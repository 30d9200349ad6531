package postgres

// StartBridge is Bridge with a given origin id, so that a test can find the
// bridge's listening connection in pg_stat_activity by its application_name.
var StartBridge = startBridge
