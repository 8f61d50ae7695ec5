export { OrderBook } from './book.js';
export * from './types.js';
