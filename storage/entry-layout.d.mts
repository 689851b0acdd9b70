// Types of entry-layout.mjs.
import type { Buffer } from 'node:buffer';
export declare const HAS_VALUE: number;
export declare const HAS_PENDING_VALUE: number;
export declare const HAS_TTL: number;
export declare const HEADER_BYTES: number;
export declare const TTL_BYTES: number;
export declare function entryCrc(key: string, body: Uint8Array): number;
export declare function copyOut(stored: Uint8Array): Buffer;
export declare function entryDamage(key: string, entry: Buffer): string | null;
export declare function settledEntry(entry: Buffer): { rev: number; valueBytes: number } | null;
