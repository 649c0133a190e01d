/**
 * Signed log heads: C2SP `tlog-checkpoint` notes signed per C2SP `signed-note` with an
 * Ed25519 key. Note text:
 *
 *     <origin>\n<tree size>\n<base64 root hash>\n
 *
 * then a blank line and one signature line per signer:
 *
 *     — <key name> <base64(key ID ‖ signature)>\n
 *
 * key ID = first 4 bytes of SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ public key); the signature is
 * Ed25519 over the note text (the lines before the blank line, each ending in \n).
 */
import {
  concatBytes,
  equalBytes,
  fromBase64,
  getProvider,
  toBase64,
  utf8,
  type CryptoProvider,
  type Ed25519PrivateKey,
} from '@tibet/core';
import { ContinuityError } from './errors.js';

const EM_DASH = '\u2014';
const ORIGIN = /^[\x21-\x7e][\x20-\x7e]{0,254}$/;
const KEY_NAME = /^[\x21-\x2a\x2c-\x7e]{1,128}$/; // no spaces, no '+'

export interface Checkpoint {
  origin: string;
  size: number;
  rootHash: Uint8Array;
  /** Extension lines after the root hash (none written by this log). */
  extensions: string[];
}

export interface NoteSignature {
  name: string;
  keyId: Uint8Array;
  signature: Uint8Array;
}

export interface SignedCheckpoint extends Checkpoint {
  text: string;
  signatures: NoteSignature[];
  /** The whole note as stored. */
  note: string;
}

/** key ID of an Ed25519 note verifier key. */
export function noteKeyId(
  name: string,
  publicKey: Uint8Array,
  p: CryptoProvider = getProvider(),
): Uint8Array {
  return p.sha256(concatBytes(utf8(name), Uint8Array.of(0x0a, 0x01), publicKey)).subarray(0, 4);
}

/** The C2SP verifier key string: `<name>+<hex key ID>+<base64(0x01 ‖ public key)>`. */
export function verifierKey(
  name: string,
  publicKey: Uint8Array,
  p: CryptoProvider = getProvider(),
): string {
  const id = Buffer.from(noteKeyId(name, publicKey, p)).toString('hex');
  return `${name}+${id}+${toBase64(concatBytes(Uint8Array.of(0x01), publicKey))}`;
}

export function checkpointText(c: Checkpoint): string {
  if (!ORIGIN.test(c.origin)) throw new TypeError('"origin" must be one line of printable ASCII');
  if (!Number.isSafeInteger(c.size) || c.size < 0) throw new RangeError('"size" invalid');
  if (c.rootHash.length !== 32) throw new RangeError('"rootHash" expected 32 bytes');
  return `${c.origin}\n${c.size}\n${toBase64(c.rootHash)}\n${c.extensions.map((e) => `${e}\n`).join('')}`;
}

export function signCheckpoint(
  c: Checkpoint,
  keyName: string,
  key: Ed25519PrivateKey,
  p: CryptoProvider = getProvider(),
): SignedCheckpoint {
  if (!KEY_NAME.test(keyName))
    throw new TypeError('"keyName" must be printable ASCII without spaces or +');
  const text = checkpointText(c);
  const signature = key.sign(utf8(text));
  const keyId = noteKeyId(keyName, key.publicKey, p);
  const note = `${text}\n${EM_DASH} ${keyName} ${toBase64(concatBytes(keyId, signature))}\n`;
  return { ...c, text, signatures: [{ name: keyName, keyId, signature }], note };
}

function malformed(msg: string): never {
  throw new ContinuityError('CHECKPOINT_MALFORMED', `checkpoint: ${msg}`);
}

/** Parse a signed checkpoint note strictly (no signature check). */
export function parseCheckpoint(note: string): SignedCheckpoint {
  if (typeof note !== 'string' || note.length > 65536) malformed('not a string of at most 64 KiB');
  if (!note.endsWith('\n')) malformed('must end with a newline');
  const sep = note.indexOf('\n\n');
  if (sep < 0) malformed('no blank line before the signatures');
  const text = note.slice(0, sep + 1);
  const sigBlock = note.slice(sep + 2);
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3) malformed('needs origin, size and root hash lines');
  const [origin, sizeLine, rootLine, ...extensions] = lines as [
    string,
    string,
    string,
    ...string[],
  ];
  if (!ORIGIN.test(origin)) malformed('bad origin line');
  if (!/^(0|[1-9][0-9]{0,15})$/.test(sizeLine)) malformed('bad tree size line');
  const size = Number(sizeLine);
  if (!Number.isSafeInteger(size)) malformed('tree size too large');
  let rootHash: Uint8Array;
  try {
    rootHash = fromBase64(rootLine, 'root hash');
  } catch {
    malformed('root hash is not base64');
  }
  if (rootHash.length !== 32) malformed('root hash must be 32 bytes');
  for (const e of extensions)
    if (e === '' || !/^[\x20-\x7e]+$/.test(e)) malformed('bad extension line');
  const signatures: NoteSignature[] = [];
  const sigLines = sigBlock.slice(0, -1).split('\n');
  if (sigLines.length === 0 || sigBlock === '') malformed('no signature lines');
  for (const l of sigLines) {
    const m = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/.exec(l);
    if (!m) malformed('bad signature line');
    let raw: Uint8Array;
    try {
      raw = fromBase64(m[2]!, 'signature');
    } catch {
      malformed('signature is not base64');
    }
    if (raw.length < 5) malformed('signature too short');
    signatures.push({ name: m[1]!, keyId: raw.slice(0, 4), signature: raw.slice(4) });
  }
  if (signatures.length > 100) malformed('too many signatures');
  return { origin, size, rootHash, extensions, text, signatures, note };
}

/**
 * Verify that a known key (name + Ed25519 public key) signed the checkpoint. Lines by
 * unknown keys are ignored, as signed-note specifies. Throws
 * `CHECKPOINT_SIGNATURE_INVALID` when the key's line is absent or does not verify.
 */
export function verifyCheckpoint(
  note: string | SignedCheckpoint,
  keyName: string,
  publicKey: Uint8Array,
  p: CryptoProvider = getProvider(),
): SignedCheckpoint {
  const c = typeof note === 'string' ? parseCheckpoint(note) : note;
  const id = noteKeyId(keyName, publicKey, p);
  const mine = c.signatures.filter((s) => s.name === keyName && equalBytes(s.keyId, id));
  if (!mine.length)
    throw new ContinuityError(
      'CHECKPOINT_SIGNATURE_INVALID',
      `checkpoint has no signature by ${keyName}`,
    );
  for (const s of mine) {
    if (s.signature.length !== 64 || !p.ed25519Verify(publicKey, utf8(c.text), s.signature)) {
      throw new ContinuityError(
        'CHECKPOINT_SIGNATURE_INVALID',
        `checkpoint signature by ${keyName} does not verify`,
      );
    }
  }
  return c;
}
