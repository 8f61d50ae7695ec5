import { describe, expect, it } from 'vitest';
import { validHttpsUrl } from './metadata.js';

describe('validHttpsUrl', () => {
  it('accepts public https URLs, normalized', () => {
    expect(validHttpsUrl('https://moon.example', 'website')).toEqual({ ok: true, value: 'https://moon.example/' });
    expect(validHttpsUrl('https://cdn.example.com/moon.png', 'imageUrl')).toEqual({ ok: true, value: 'https://cdn.example.com/moon.png' });
    expect(validHttpsUrl('https://8.8.8.8/logo.png', 'imageUrl').ok).toBe(true);
    expect(validHttpsUrl('https://[2606:4700::1111]/', 'website').ok).toBe(true);
  });

  it.each(['javascript:alert(1)', 'data:image/png;base64,AAAA', 'file:///etc/passwd', 'http://moon.example/', 'https://user:pw@moon.example/', 'https://moon.example@evil.example/'])('refuses %s', (url) => {
    expect(validHttpsUrl(url, 'website')).toMatchObject({ ok: false, code: 'validation_failed' });
  });

  // Every client that shows a token's image fetches it, and its website is one click away: a URL
  // naming the viewer's own machine or network (a router's admin page, a cloud metadata service,
  // an intranet host) turns a public token page into requests inside each viewer's network.
  it.each([
    'https://localhost/',
    'https://LOCALHOST./x',
    'https://wallet.localhost/',
    'https://router/admin',
    'https://printer.local/',
    'https://db.internal/',
    'https://nas.home.arpa/',
    'https://127.0.0.1/',
    'https://0x7f.1/',
    'https://2130706433/',
    'https://10.0.0.1/',
    'https://172.16.5.4/',
    'https://192.168.1.1/reboot',
    'https://169.254.169.254/latest/meta-data/',
    'https://100.64.0.1/',
    'https://0.0.0.0/',
    'https://224.0.0.1/',
    'https://[::1]/',
    'https://[::]/',
    'https://[fe80::1]/',
    'https://[fd00::1]/',
    'https://[::ffff:127.0.0.1]/',
    'https://[::ffff:192.168.0.1]/',
  ])('refuses a URL naming a local or private host: %s', (url) => {
    expect(validHttpsUrl(url, 'imageUrl')).toMatchObject({ ok: false, code: 'validation_failed', detail: 'imageUrl must name a public host' });
  });
});
