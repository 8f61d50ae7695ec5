/**
 * @moondraft/client: the TypeScript client for the Moondraft trading API.
 * Every export is named here; nothing else in src/ is public.
 */
export { MoondraftClient, DEFAULT_BASE_URL, type MoondraftClientOptions, type RawRequestOptions } from './client.js';
export {
  MoondraftError,
  isMoondraftError,
  signatureDifference,
  SERVER_ERROR_CODES,
  CLIENT_ERROR_CODES,
  type MoondraftErrorCode,
  type ServerErrorCode,
  type ClientErrorCode,
  type SignedParts,
} from './errors.js';
export {
  canonicalMessage,
  signRequest,
  signedParts,
  hmacSigner,
  ed25519Signer,
  generateEd25519KeyPair,
  ed25519PublicKey,
  type RequestSigner,
  type RequestToSign,
} from './signing/sign.js';
export { spkiPin } from './transport/pinning.js';
export type { TlsOptions } from './transport/node.js';
export type { Transport, TransportRequest, TransportResponse } from './transport/types.js';
export type { Clock, ClockEstimate } from './time/server-clock.js';
export type { Session, SessionListener, TokenPair } from './session/session.js';
export type { RetryOptions } from './core/retry.js';
export type { RateLimitState } from './core/rate-limit.js';
export type { AuthMode, CallOptions, Hooks, HttpMethod, ResponseEvent, RetryEvent, RetryReason } from './core/requester.js';

export { SCOPES, type Chain, type Decimal, type EpochMs, type Role, type Scope } from './api/common.js';
export type { Asset, Market, Ticker, PriceLevel, OrderBook, PublicTrade, Candle, CandleInterval, OrderBookQuery, TradesQuery, CandlesQuery, MarketApi } from './api/market.js';
export {
  newClientOrderId,
  type Side,
  type OrderType,
  type TimeInForce,
  type SelfTradePrevention,
  type OrderStatus,
  type OrderStatusFilter,
  type PlaceOrderRequest,
  type Order,
  type OrderWithFills,
  type OrdersQuery,
  type OrdersPage,
  type Fill,
  type FillsQuery,
  type FillsPage,
  type Position,
  type ClosePositionRequest,
  type CancelAllResult,
  type TradingApi,
} from './api/trading.js';
export type {
  Account,
  Balance,
  Portfolio,
  TradingLimit,
  WithdrawalRequest,
  Withdrawal,
  WithdrawalStatus,
  WithdrawalsQuery,
  WithdrawalLimit,
  WithdrawalChain,
  WithdrawalAddress,
  AddressBook,
  SaveAddressRequest,
  AccountApi,
  WithdrawalsApi,
} from './api/account.js';
export type { CreateTokenRequest, UpdateTokenRequest, Token, LaunchedToken, TokensQuery, TokensPage, TokensApi } from './api/tokens.js';
export type { KeyType, KeyStatus, CreateKeyRequest, ApiKeyInfo, CreatedKey, RegeneratedKey, UpdateKeyRequest, RegenerateKeyRequest, Checklist, ChecklistItem, KeysApi } from './api/keys.js';
export type { SessionInfo, SessionsApi } from './api/sessions.js';
export type { FaucetRequest, FaucetResult, SandboxApi } from './api/sandbox.js';
export type { ChallengeRequest, Challenge, LoginRequest, EthereumSigner, SignInOptions, AuthApi } from './api/auth.js';
export type { ServerTime, Health, Jwks, SystemApi } from './api/system.js';
