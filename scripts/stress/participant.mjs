// One thread's side of the stress run: random hand-outs, frees and hand-offs, each block
// checked against its id cookie and the shared owner map.
import { checkCookie, expectCode, fail, make, offsetOf, randomRequest, writeCookie } from './common.mjs'

/** Blocks a thread holds at most (a stable thread; churn workers hold fewer). */
const HOLD = 48

export class Participant {
  /**
   * @param arena - this thread's object for the shared arena.
   * @param owners - the OwnerMap.
   * @param r - this thread's rng.
   * @param nextId - returns a fresh id for a block this thread marks.
   * @param send - posts `{ h, id }` (a hand-off and its cookie id) to another thread; `undefined`: none.
   */
  constructor(arena, owners, r, nextId, send, hold = HOLD) {
    this.arena = arena
    this.owners = owners
    this.r = r
    this.nextId = nextId
    this.send = send
    this.hold = hold
    /** { x, cookie, mark, offset, byteLength } */
    this.held = []
    this.ops = {
      alloc: 0,
      free: 0,
      transfer: 0,
      receive: 0,
      reclaim: 0,
      selfReceive: 0,
      doubleFree: 0,
      staleHandle: 0,
      owns: 0,
      outOfMemory: 0,
      bytesHandedOut: 0,
    }
  }

  total() {
    const o = this.ops
    return o.alloc + o.free + o.transfer + o.receive + o.reclaim + o.selfReceive + o.doubleFree + o.staleHandle + o.owns
  }

  /** One random operation. */
  step() {
    const r = this.r
    const p = r.below(100)
    if (this.held.length === 0 || (this.held.length < this.hold && p < 45)) return this.alloc()
    const i = r.below(this.held.length)
    if (p < 75) return this.free(i)
    if (p < 87 && this.send !== undefined) return this.transferOut(i)
    if (p < 91) return this.transferToSelf(i, r.chance(0.5))
    if (p < 95) return this.doubleFree(i)
    return this.checkOwns(i)
  }

  alloc() {
    const request = randomRequest(this.r)
    let x
    try {
      x = make(this.arena, request)
    } catch (e) {
      // The arena's cap (1 GiB) can be reached: blocks are spread over five threads' caches and
      // slabs of many size classes, and a block above 4 MiB needs contiguous free pages.
      if (e?.code !== 'ERR_OUT_OF_MEMORY') throw e
      this.ops.outOfMemory++
      if (this.held.length > 0) this.free(this.r.below(this.held.length))
      return
    }
    const id = this.nextId()
    this.adopt(x, id, id, 'alloc')
    this.ops.alloc++
    this.ops.bytesHandedOut += x.byteLength
  }

  /** Takes `x` (made or received here): marks its range, writes or checks its cookie. */
  adopt(x, cookie, mark, where, fresh = true) {
    const offset = offsetOf(x)
    const byteLength = x.byteLength
    this.owners.mark(offset, byteLength, mark)
    if (fresh) writeCookie(x, cookie)
    else checkCookie(x, cookie, where)
    this.held.push({ x, cookie, mark, offset, byteLength })
  }

  /** Removes block `i` from the held list, checks its cookie and unmarks its range. */
  release(i, where) {
    const b = this.held[i]
    this.held[i] = this.held[this.held.length - 1]
    this.held.pop()
    checkCookie(b.x, b.cookie, where)
    if (!this.arena.owns(b.x)) fail(`${where}: owns() is false for live block ${b.cookie}`)
    this.owners.clear(b.offset, b.byteLength, b.mark)
    return b
  }

  free(i) {
    const b = this.release(i, 'free')
    this.arena.free(b.x)
    this.ops.free++
  }

  doubleFree(i) {
    const b = this.release(i, 'free')
    this.arena.free(b.x)
    expectCode(() => this.arena.free(b.x), 'ERR_DOUBLE_FREE', 'second free')
    if (this.arena.owns(b.x)) fail('owns() is true after free')
    this.ops.free++
    this.ops.doubleFree++
  }

  checkOwns(i) {
    const b = this.held[i]
    if (!this.arena.owns(b.x)) fail(`owns() is false for live block ${b.cookie}`)
    if (this.arena.owns(new Uint8Array(8))) fail('owns() is true for a plain Uint8Array')
    this.ops.owns++
  }

  /** Hands block `i` off and returns its handle (the range is unmarked while in flight). */
  handOff(i) {
    const b = this.release(i, 'transfer')
    const h = this.arena.transfer(b.x)
    if (h.offset !== b.offset) fail(`transfer: handle offset ${h.offset}, block ${b.cookie} is at ${b.offset}`)
    if (h.byteLength !== b.byteLength) fail(`transfer: handle byteLength ${h.byteLength}, block has ${b.byteLength}`)
    if (!(b.x instanceof ArrayBuffer) && h.kind !== 'view' && b.x.byteLength !== 0) fail('transfer left the array attached')
    if (b.x instanceof ArrayBuffer && b.x.byteLength !== 0) fail('transfer left the buffer attached')
    expectCode(() => this.arena.free(b.x), 'ERR_DOUBLE_FREE', 'free after transfer')
    this.ops.transfer++
    return { h, cookie: b.cookie }
  }

  transferOut(i) {
    const { h, cookie } = this.handOff(i)
    this.send(h, cookie)
  }

  /** Hands block `i` off and takes it back (receive) or gives it up (reclaim) in this thread. */
  transferToSelf(i, receive) {
    const { h, cookie } = this.handOff(i)
    if (receive) {
      this.receive(h, cookie)
      this.ops.selfReceive++
    } else {
      this.arena.reclaim(h)
      this.ops.reclaim++
    }
    expectCode(() => this.arena.receive(h), 'ERR_ALREADY_RECEIVED', 'receive of a spent handle')
    expectCode(() => this.arena.reclaim(h), 'ERR_ALREADY_RECEIVED', 'reclaim of a spent handle')
    this.ops.staleHandle++
  }

  /** Receives hand-off `h` of block `cookie`: same memory, same cookie. */
  receive(h, cookie) {
    const x = this.arena.receive(h)
    if (offsetOf(x) !== h.offset) fail(`receive: block ${cookie} at ${offsetOf(x)}, handle says ${h.offset}`)
    if (x.byteLength !== h.byteLength) fail(`receive: ${x.byteLength} bytes, handle says ${h.byteLength}`)
    this.adopt(x, cookie, this.nextId(), 'receive', false)
    this.ops.receive++
  }

  /** Frees everything held. */
  freeAll() {
    while (this.held.length > 0) this.free(this.held.length - 1)
  }
}
