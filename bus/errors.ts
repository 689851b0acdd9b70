// Operating errors of the bus, one class per condition (nats.js style). Names are pinned by tests.
export class BusTimeoutError extends Error {
  constructor(subject: string, options?: { cause?: unknown }) {
    super(`no reply on ${subject} in time`, options);
    this.name = 'BusTimeoutError';
  }
}

export class NoRespondersError extends Error {
  constructor(subject: string, options?: { cause?: unknown }) {
    super(`no responders on ${subject}`, options);
    this.name = 'NoRespondersError';
  }
}

export class BusClosedError extends Error {
  constructor(options?: { cause?: unknown }) {
    super('bus connection is closed', options);
    this.name = 'BusClosedError';
  }
}

export class MaxPayloadError extends Error {
  constructor(actualBytes: number, requiredBytes: number) {
    super(
      `the NATS server allows messages of ${actualBytes} bytes, ZiStore needs max_payload of at least ${requiredBytes} ` +
        '(1 MiB values plus metadata); set max_payload: 8MB in the nats-server config (zistore up does this)',
    );
    this.name = 'MaxPayloadError';
  }
}

export class CodecError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CodecError';
  }
}

export const errors = { BusTimeoutError, NoRespondersError, BusClosedError, MaxPayloadError, CodecError };
