export type {
  CheckFailure,
  CheckOptions,
  CheckResult,
  CheckUnknown,
  ClientInput,
  FailureKind,
  KvInput,
  KvOutput,
  Operation,
  ScanEntryOutput,
  TxnInput,
} from './history.ts';
export type { KvState, StepResult } from './kv-model.ts';
export { applyUnknown, describeState, initialState, step } from './kv-model.ts';
export type { KeyCheck } from './linearizability.ts';
export { checkExpiredReads, checkHistory, checkKeyHistory, checkTornTransactions, expandExpiries, expandMultiKey, expandScans, expandTxns, checkRevisions, hasUnknownOutcome, relevantOps } from './linearizability.ts';
export { describeOp, formatFailure, formatInput, formatOperations, formatOutput } from './format.ts';
