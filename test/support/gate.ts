import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from 'kysely';
import type { Store } from '../../src/store/db.js';

/**
 * Once armed, pauses the transaction that next reads `table` right after that read, until
 * `release()` (or 3 s passed): the interleaving that concurrent requests on a PostgreSQL pool, or
 * two scale-out servers, produce by chance.
 */
export function gateAfterRead(table: string) {
  let armed = false;
  let reached!: () => void;
  const reachedP = new Promise<void>((r) => (reached = r));
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const watched = new WeakSet<object>();
  const plugin: KyselyPlugin = {
    transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
      if (armed && args.node.kind === 'SelectQueryNode' && JSON.stringify(args.node).includes(`"${table}"`)) watched.add(args.queryId);
      return args.node;
    },
    async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
      if (armed && watched.has(args.queryId)) {
        armed = false;
        reached();
        await Promise.race([released, new Promise((r) => setTimeout(r, 3000))]);
      }
      return args.result;
    },
  };
  return { plugin, reached: reachedP, release, arm: () => void (armed = true) };
}

/** The store with the gate in every transaction it runs. */
export function gated(inner: Store, plugin: KyselyPlugin): Store {
  return {
    db: inner.db,
    dialect: inner.dialect,
    transaction: (fn) => inner.transaction((trx) => fn(trx.withPlugin(plugin))),
    snapshot: (fn) => inner.snapshot(fn),
    ping: () => inner.ping(),
    limitQueries: (ms) => inner.limitQueries(ms),
    close: () => inner.close(),
  };
}
