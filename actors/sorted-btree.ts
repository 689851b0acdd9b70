// The sorted-btree package, required once for every module that uses it: a CommonJS module whose
// class is `exports.default`, required as such so that it is the same under Node and vitest.
import { createRequire } from 'node:module';

const requireCjs = createRequire(import.meta.url);

export const BTree = (requireCjs('sorted-btree') as typeof import('sorted-btree')).default;
