/**
 * One gateway session (`gsess:<ephemeral_id>`): holds the secret material between the
 * keychain's `secret-proxied` event and the end of the adapter's act, then zeroes it.
 *
 * What JavaScript cannot guarantee: `fill(0)` zeroes this buffer, but not copies an engine,
 * a TLS stack, a child process or the kernel made (an HTTP header string, a process
 * environment, socket buffers), and the garbage collector may have moved an earlier copy.
 * See docs/gateway.md, "Wiping".
 */
export class GatewaySession {
  readonly #material: Uint8Array;
  readonly #length: number;
  #destroyed = false;

  constructor(
    readonly id: string,
    material: Uint8Array,
  ) {
    this.#material = material;
    this.#length = material.length;
  }

  /** The material, while the session is open. */
  get material(): Uint8Array {
    if (this.#destroyed) throw new Error(`session ${this.id} is destroyed`);
    return this.#material;
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  /**
   * Zero the material, then read it back: true only when the buffer still has its length
   * (it was not transferred or detached) and every byte reads 0.
   */
  destroy(): boolean {
    this.#destroyed = true;
    const m = this.#material;
    m.fill(0);
    if (m.length !== this.#length || m.byteLength !== this.#length) return false;
    for (let i = 0; i < m.length; i++) if (m[i] !== 0) return false;
    return true;
  }
}
