/** Process launchers and fault-injection helpers for ZiStore (see cluster/README.md). */
export { startZooKeeper, ZOOKEEPER_JAR, type ZooKeeperHandle, type ZooKeeperOptions } from './zookeeper-server.ts';
export {
  DEFAULT_MAX_PAYLOAD_BYTES,
  startNatsCluster,
  startNatsServer,
  waitNatsHealthy,
  type NatsClusterHandle,
  type NatsClusterOptions,
  type NatsClusterRouteOptions,
  type NatsJetStreamOptions,
  type NatsServerHandle,
  type NatsServerOptions,
} from './nats-server.ts';
export { startTcpProxy, type CutMode, type TcpProxyHandle, type TcpProxyOptions } from './tcp-proxy.ts';
export { freePort, freePorts } from './ports.ts';
export { isOurTempDir, makeTempDir, removeTempDir, removeTempDirSync, TEMP_DIR_PREFIX } from './temp-dir.ts';
export {
  installSignalHandlers,
  killAllProcessesSync,
  stopAllProcesses,
  trackedProcesses,
  trackProcess,
  untrackProcess,
  type SignalHandlerOptions,
  type TrackedProcess,
} from './process-registry.ts';
export { tcpExchange, zkFourLetterWord } from './tcp-probe.ts';
export type { ClusterLogger } from './logger.ts';
