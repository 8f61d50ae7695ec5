import { ed25519 } from '@noble/curves/ed25519.js';
import { base58 } from '@scure/base';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import type { TestServer } from './server.js';

/** What a real wallet sign-in yields: tokens, the account, and ready-made request headers. */
export interface SignedIn {
  accessToken: string;
  refreshToken: string;
  sessionId: string;
  account: { id: string; wallet: string; chain: string; role: string };
  headers: { authorization: string };
}

/** How the simulated client appears to the server. */
export interface ClientOptions {
  headers?: Record<string, string>;
  remoteAddress?: string;
}

/** POST /auth/challenge; throws unless 200. */
export async function requestChallenge(server: TestServer, address: string, chain: 'ethereum' | 'solana', client: ClientOptions = {}): Promise<{ message: string; nonce: string; expiresAt: number }> {
  const res = await server.app.inject({ method: 'POST', url: '/api/v1/auth/challenge', payload: { address, chain }, ...client });
  if (res.statusCode !== 200) throw new Error(`challenge failed: ${res.statusCode} ${res.body}`);
  return res.json();
}

/** POST /auth/login, returning the raw response (for tests of refusals). */
export function postLogin(server: TestServer, message: string, signature: string, client: ClientOptions = {}) {
  return server.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { message, signature }, ...client });
}

async function login(server: TestServer, message: string, signature: string, client: ClientOptions = {}): Promise<SignedIn> {
  const res = await postLogin(server, message, signature, client);
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.statusCode} ${res.body}`);
  const body = res.json() as Omit<SignedIn, 'headers'>;
  return { ...body, headers: { authorization: `Bearer ${body.accessToken}` } };
}

/** An Ethereum wallet (random unless a private key is given). */
export function ethereumWallet(privateKey: `0x${string}` = generatePrivateKey()) {
  const account = privateKeyToAccount(privateKey);
  return { privateKey, address: account.address, sign: (message: string) => account.signMessage({ message }) };
}

/** A Solana wallet (random unless a 32-byte secret key is given); signatures are base58. */
export function solanaWallet(secretKey: Uint8Array = ed25519.utils.randomSecretKey()) {
  const address = base58.encode(ed25519.getPublicKey(secretKey));
  return { secretKey, address, sign: (message: string) => base58.encode(ed25519.sign(new TextEncoder().encode(message), secretKey)) };
}

/** Signs in with an Ethereum wallet through the real challenge → sign → login flow. */
export async function signInEthereum(server: TestServer, privateKey?: `0x${string}`, client: ClientOptions = {}): Promise<SignedIn & { wallet: ReturnType<typeof ethereumWallet> }> {
  const wallet = ethereumWallet(privateKey);
  const { message } = await requestChallenge(server, wallet.address, 'ethereum', client);
  return { ...(await login(server, message, await wallet.sign(message), client)), wallet };
}

/** Signs in with a Solana wallet through the real challenge → sign → login flow. */
export async function signInSolana(server: TestServer, secretKey?: Uint8Array, client: ClientOptions = {}): Promise<SignedIn & { wallet: ReturnType<typeof solanaWallet> }> {
  const wallet = solanaWallet(secretKey);
  const { message } = await requestChallenge(server, wallet.address, 'solana', client);
  return { ...(await login(server, message, wallet.sign(message), client)), wallet };
}
