/**
 * The part of a pino logger the cluster launchers use. A pino Logger satisfies it;
 * omitted, nothing is logged.
 */
export interface ClusterLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const noop = (): void => {};

export const silentLogger: ClusterLogger = { debug: noop, info: noop, warn: noop, error: noop };
