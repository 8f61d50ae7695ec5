import { main } from './cli/index.js';

// `npm start`: the same as `moondraft serve`.
await main([process.argv[0]!, process.argv[1]!, 'serve', ...process.argv.slice(2)]);
