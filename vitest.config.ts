import { defineConfig } from 'vitest/config';

// Unit and simulation tests are pure and fast; integration tests start real ZooKeeper,
// nats-server and node processes, so they run one file at a time on this 2-core machine.
export default defineConfig({
  test: {
    globalSetup: ['test/support/build.ts'],
    fileParallelism: false,
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts', 'test/sim/**/*.test.ts'],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.int.test.ts'],
          testTimeout: 90_000,
          hookTimeout: 90_000,
        },
      },
    ],
  },
});
