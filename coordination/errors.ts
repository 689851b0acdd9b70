// Operating errors of the coordination adapters, one class per condition (as nats.js
// core/src/errors.ts). Every class sets `name`, passes `{ cause }` and keeps the znode `path`.
// They share the base CoordinationError so a caller can catch "any coordination failure";
// a plain CoordinationError is the "other" case (an unexpected ZooKeeper code, bad data).
//
// The coordinator (coordinator.ts) maps ZooKeeper's error codes (zk-client.ts) to these.

export interface CoordinationErrorOptions {
  cause?: unknown;
  /** The znode the failed operation was about, when there is one. */
  path?: string;
  /** ZooKeeper error code (the library's Exception constants), when the error came from one. */
  code?: number;
}

export class CoordinationError extends Error {
  readonly path: string | undefined;
  readonly code: number | undefined;
  constructor(message: string, options: CoordinationErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CoordinationError';
    this.path = options.path;
    this.code = options.code;
  }
}

/** The ZooKeeper session is gone; nothing done under it (ephemerals, watches) survives. */
export class SessionExpiredError extends CoordinationError {
  constructor(message = 'session expired', options: CoordinationErrorOptions = {}) {
    super(message, options);
    this.name = 'SessionExpiredError';
  }
}

/**
 * No live connection right now (connecting, suspended, stopped), or it was lost while the
 * operation was in flight: the outcome of such an operation is unknown.
 */
export class NotConnectedError extends CoordinationError {
  constructor(message = 'not connected', options: CoordinationErrorOptions = {}) {
    super(message, options);
    this.name = 'NotConnectedError';
  }
}

/** A fenced write failed: the epoch moved on since our claim, so someone else leads now. */
export class DeposedError extends CoordinationError {
  constructor(message = 'deposed', options: CoordinationErrorOptions = {}) {
    super(message, options);
    this.name = 'DeposedError';
  }
}

/** No answer within the operation timeout: the outcome is unknown. */
export class CoordinationTimeoutError extends CoordinationError {
  readonly timeoutMs: number | undefined;
  constructor(message = 'coordination timeout', options: CoordinationErrorOptions & { timeoutMs?: number } = {}) {
    super(message, options);
    this.name = 'CoordinationTimeoutError';
    this.timeoutMs = options.timeoutMs;
  }
}

export const errors = {
  CoordinationError,
  SessionExpiredError,
  NotConnectedError,
  DeposedError,
  CoordinationTimeoutError,
} as const;
