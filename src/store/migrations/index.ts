import type { Kysely, Migration } from 'kysely';
import type { Dialect } from '../db.js';
import * as m0001 from './0001_accounts.js';
import * as m0010 from './0010_identity.js';
import * as m0030 from './0030_api_keys.js';
import * as m0050 from './0050_audit.js';
import * as m0070 from './0070_audit_write_cost.js';
import * as m0080 from './0080_index_write_cost.js';
import * as m0090 from './0090_account_history.js';
import * as m0100 from './0100_client_order_id_index.js';
import * as m0110 from './0110_tokens_newest_index.js';
import * as m0120 from './0120_withdrawal_client_id.js';
import * as m0130 from './0130_api_keys_changed_index.js';
import * as m0140 from './0140_open_orders_limits.js';
import * as m0150 from './0150_deployment_environment.js';
import * as m0040 from './0040_rate_limits.js';
import * as m0041 from './0041_ip_blocks.js';
import * as m0020 from './0020_trading.js';
import * as m0060 from './0060_tokens_withdrawals.js';

type Step = { up: (dialect: Dialect) => (db: Kysely<any>) => Promise<void>; down?: (dialect: Dialect) => (db: Kysely<any>) => Promise<void> };

/**
 * Every migration, in order. Names are permanent once released: add new ones at the end with the
 * next number (one file per feature change), never edit an applied one.
 */
const STEPS: Record<string, Step> = {
  '0001_accounts': m0001,
  '0010_identity': m0010,
  '0030_api_keys': m0030,
  '0050_audit': m0050,
  '0040_rate_limits': m0040,
  '0041_ip_blocks': m0041,
  '0020_trading': m0020,
  '0060_tokens_withdrawals': m0060,
  '0070_audit_write_cost': m0070,
  '0080_index_write_cost': m0080,
  '0090_account_history': m0090,
  '0100_client_order_id_index': m0100,
  '0110_tokens_newest_index': m0110,
  '0120_withdrawal_client_id': m0120,
  '0130_api_keys_changed_index': m0130,
  '0140_open_orders_limits': m0140,
  '0150_deployment_environment': m0150,
};

export function migrations(dialect: Dialect): Record<string, Migration> {
  const out: Record<string, Migration> = {};
  for (const [name, step] of Object.entries(STEPS)) {
    out[name] = { up: step.up(dialect), ...(step.down ? { down: step.down(dialect) } : {}) };
  }
  return out;
}
