import { main } from './index.js';

// Runs the CLI from source (tests, `npx tsx src/cli/run.ts`); bin/moondraft.js runs the built one.
await main(process.argv);
