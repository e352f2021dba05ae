// Scopes: `arena.scope(fn)` / `scope(fn)` free every hand-out of the arena the thread made
// inside `fn` when it settles, except what `fn` returns or keeps; nested, async, throwing
// and transferring scopes. Each test uses its own arena (the default-arena tests are
// serial), so the counters read are the test's own.
import test from 'ava'
import { Arena, SCOPE_WALK_DEPTH, defaultArena, scope, stats, view } from 'tensor-arena'
import type { Keep } from 'tensor-arena'
import { turn } from './helpers'

const newArena = (): Arena => new Arena({ maxBytes: 64 * 1024 * 1024 })
const live = (arena: Arena): number => arena.stats().liveAllocations

test('a sync scope frees every view, array and buffer made inside when fn returns, counted as frees', (t) => {
  const arena = newArena()
  const before = arena.stats()
  const made: object[] = []
  const result = arena.scope(() => {
    made.push(arena.view('float32', 16), arena.view('uint8', 5000), arena.array('float64', 8), arena.alloc(100))
    t.is(live(arena), before.liveAllocations + 4, 'live while fn runs')
    return 42
  })
  t.is(result, 42)
  for (const x of made) t.false(arena.owns(x))
  const after = arena.stats()
  t.is(after.liveAllocations, before.liveAllocations)
  t.is(after.freesTotal - before.freesTotal, 4)
  t.is(after.rejectedFreesTotal, before.rejectedFreesTotal)
})

test('what fn returns survives: an allocation, arrays and objects of them, nested, Maps and Sets', (t) => {
  const arena = newArena()
  const v = arena.scope(() => arena.view('float32', 4))
  t.true(arena.owns(v))
  const { a, pair, nested, map, set } = arena.scope(() => {
    arena.view('float32', 4) // freed
    return {
      a: arena.array('int32', 3),
      pair: [arena.view('uint8', 10), arena.alloc(10)],
      nested: [{ deep: [[arena.view('float64', 2)]] }],
      map: new Map([['m', arena.view('uint8', 3)]]),
      set: new Set([arena.view('uint8', 4)]),
    }
  })
  for (const x of [a, ...pair, nested[0].deep[0][0], map.get('m') as Uint8Array, ...set]) t.true(arena.owns(x))
  t.is(live(arena), 7, 'only the freed temporary is gone')
})

test('returning a subarray, DataView or the buffer of an exclusive array keeps that array', (t) => {
  const arena = newArena()
  const [sub, dv, buf] = arena.scope(() => {
    const x = arena.array('float32', 8).fill(2)
    const y = arena.array('uint8', 8)
    const z = arena.array('int16', 4)
    return [x.subarray(2, 4), new DataView(y.buffer), z.buffer]
  })
  t.deepEqual([...sub], [2, 2])
  t.is(dv.byteLength, 8)
  t.is(buf.byteLength, 8)
  t.is(live(arena), 3)
})

test('a cyclic returned object is walked once and keeps what it holds', (t) => {
  const arena = newArena()
  const out = arena.scope(() => {
    const node: { self?: unknown; v: Float32Array } = { v: arena.view('float32', 2) }
    node.self = node
    arena.view('float32', 2) // freed
    return node
  })
  t.true(arena.owns(out.v))
  t.is(live(arena), 1)
})

test('an allocation nested deeper than SCOPE_WALK_DEPTH in the result is not seen, so it is freed', (t) => {
  const arena = newArena()
  const wrap = (x: unknown, levels: number): unknown => (levels === 0 ? x : [wrap(x, levels - 1)])
  let atLimit: unknown
  let beyond: unknown
  arena.scope(() => {
    atLimit = arena.view('uint8', 1)
    beyond = arena.view('uint8', 1)
    return [wrap(atLimit, SCOPE_WALK_DEPTH - 1), wrap(beyond, SCOPE_WALK_DEPTH)]
  })
  t.true(arena.owns(atLimit))
  t.false(arena.owns(beyond))
})

test('keep exempts an allocation (or a container of them) from the scope, and returns its argument', (t) => {
  const arena = newArena()
  let kept: Float32Array | undefined
  let group: { a: Uint8Array; b: ArrayBuffer } | undefined
  arena.scope((keep) => {
    kept = keep(arena.view('float32', 4))
    group = keep({ a: arena.view('uint8', 2), b: arena.alloc(8) })
    arena.view('float32', 4) // freed
  })
  t.true(arena.owns(kept))
  t.true(arena.owns(group?.a))
  t.true(arena.owns(group?.b))
  t.is(live(arena), 3)
})

test('keep inside an inner scope survives the outer scope too (as tf.keep)', (t) => {
  const arena = newArena()
  let v: Float32Array | undefined
  arena.scope(() => {
    arena.scope((keep) => {
      v = keep(arena.view('float32', 4))
    })
  })
  t.true(arena.owns(v))
})

test('keep of a non-object throws ERR_INVALID_ARG_TYPE', (t) => {
  const arena = newArena()
  arena.scope((keep: Keep) => {
    t.throws(() => keep(3), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
    t.throws(() => keep(null), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  })
})

test('nested scopes: the inner frees its own; what it returns moves to the outer, which frees it unless returned', (t) => {
  const arena = newArena()
  let inner: Float32Array | undefined
  let innerTemp: Float32Array | undefined
  let outerTemp: Float32Array | undefined
  const survivor = arena.scope(() => {
    outerTemp = arena.view('float32', 4)
    inner = arena.scope(() => {
      innerTemp = arena.view('float32', 4)
      return arena.view('float32', 4)
    })
    t.false(arena.owns(innerTemp), 'freed when the inner scope returned')
    t.true(arena.owns(inner), 'returned by the inner scope')
    t.true(arena.owns(outerTemp))
    return arena.scope(() => arena.view('float32', 8))
  })
  t.false(arena.owns(inner), 'moved to the outer scope, which freed it')
  t.false(arena.owns(outerTemp))
  t.true(arena.owns(survivor), 'returned through both scopes')
  t.is(live(arena), 1)
})

test('a throw frees everything made inside, even what would have been returned, and rethrows the same error', (t) => {
  const arena = newArena()
  const boom = new Error('boom')
  let v: Float32Array | undefined
  let innerResult: Float32Array | undefined
  const thrown = t.throws(() =>
    arena.scope(() => {
      innerResult = arena.scope(() => arena.view('float32', 4))
      v = arena.view('float32', 4)
      throw boom
    }),
  )
  t.is(thrown, boom)
  t.false(arena.owns(v))
  t.false(arena.owns(innerResult))
  t.is(live(arena), 0)
})

test('what was passed to keep survives a throw too', (t) => {
  const arena = newArena()
  let kept: Float32Array | undefined
  t.throws(() =>
    arena.scope((keep) => {
      kept = keep(arena.view('float32', 4))
      arena.view('float32', 4)
      throw new Error('boom')
    }),
  )
  t.true(arena.owns(kept))
  t.is(live(arena), 1)
})

test('an allocation freed explicitly inside is not freed again, even after its block was handed out again', (t) => {
  const arena = newArena()
  const before = arena.stats()
  let second: Float32Array | undefined
  arena.scope(() => {
    const first = arena.view('float32', 4)
    arena.free(first)
    second = arena.view('float32', 4) // the same block, recycled
    const buffer = arena.alloc(64)
    arena.free(buffer)
  })
  t.false(arena.owns(second))
  const after = arena.stats()
  t.is(after.liveAllocations, before.liveAllocations)
  t.is(after.freesTotal - before.freesTotal, 3, 'first, second and the buffer: each once')
  t.is(after.rejectedFreesTotal, before.rejectedFreesTotal, 'no refused (double) free')
})

test('an allocation transferred out inside the scope is not freed: the handle still receives it intact', (t) => {
  const arena = newArena()
  const handles = arena.scope(() => {
    const v = arena.view('uint8', 64).fill(7)
    const a = arena.array('float32', 4).fill(1.5)
    return [arena.transfer(v), arena.transfer(a)] as const
  })
  t.is(arena.stats().inFlightBytes, 64 + 16)
  const v = arena.receive(handles[0])
  const a = arena.receive(handles[1])
  t.true(v.every((x) => x === 7))
  t.deepEqual([...a], [1.5, 1.5, 1.5, 1.5])
  t.is(live(arena), 2)
})

test('an allocation received inside a scope is freed with it', (t) => {
  const arena = newArena()
  const handle = arena.transfer(arena.view('float32', 4))
  arena.scope(() => {
    t.true(arena.owns(arena.receive(handle)))
  })
  t.is(live(arena), 0)
  t.is(arena.stats().inFlightBytes, 0)
})

test("a scope frees only its own arena's hand-outs", (t) => {
  const arena = newArena()
  const other = newArena()
  let mine: Float32Array | undefined
  let theirs: Float32Array | undefined
  arena.scope(() => {
    mine = arena.view('float32', 4)
    theirs = other.view('float32', 4)
  })
  t.false(arena.owns(mine))
  t.true(other.owns(theirs))
})

test('nested scopes of two arenas: each frees its own arena’s hand-outs; the inner’s result moves to the outer scope of its arena', (t) => {
  const a = newArena()
  const b = newArena()
  let fromA: Float32Array | undefined
  let tempB: Float32Array | undefined
  a.scope(() => {
    fromA = b.scope(() => {
      tempB = b.view('float32', 2)
      return a.view('float32', 2) // not b's: b's scope does not see it; a's scope frees it
    })
    t.false(b.owns(tempB))
    t.true(a.owns(fromA))
  })
  t.false(a.owns(fromA))
})

test('an async scope frees what it made before and after awaits when its promise settles, and resolves to the result', async (t) => {
  const arena = newArena()
  let early: Float32Array | undefined
  let late: Float32Array | undefined
  const pending = arena.scope(async () => {
    early = arena.view('float32', 4)
    await turn()
    late = arena.view('float32', 4)
    await turn()
    return arena.array('float32', 2).fill(3)
  })
  t.true(pending instanceof Promise)
  await turn()
  t.true(arena.owns(early), 'not freed before the promise settles')
  const result = await pending
  t.deepEqual([...result], [3, 3])
  t.false(arena.owns(early))
  t.false(arena.owns(late))
  t.true(arena.owns(result))
  t.is(live(arena), 1)
})

test('a rejected async scope frees everything and rejects with the same error', async (t) => {
  const arena = newArena()
  const boom = new Error('later')
  let v: Float32Array | undefined
  const error = await t.throwsAsync(
    arena.scope(async () => {
      await turn()
      v = arena.view('float32', 4)
      throw boom
    }),
  )
  t.is(error, boom)
  t.false(arena.owns(v))
  t.is(live(arena), 0)
})

test('concurrent async scopes each free only their own hand-outs', async (t) => {
  const arena = newArena()
  const made: Record<string, Float32Array[]> = { a: [], b: [] }
  let releaseA: () => void = () => {}
  const gateA = new Promise<void>((resolve) => {
    releaseA = resolve
  })
  const a = arena.scope(async () => {
    made.a.push(arena.view('float32', 4))
    await gateA
    made.a.push(arena.view('float32', 4))
  })
  const b = arena.scope(async () => {
    made.b.push(arena.view('float32', 4))
    await turn()
    made.b.push(arena.view('float32', 4))
  })
  await b
  t.true(
    made.b.every((x) => !arena.owns(x)),
    'b freed its own',
  )
  t.true(
    made.a.every((x) => arena.owns(x)),
    'a is still running: nothing of it freed by b',
  )
  releaseA()
  await a
  t.is(made.a.length, 2)
  t.true(made.a.every((x) => !arena.owns(x)))
  t.is(live(arena), 0)
})

test('hand-outs made outside any scope while an async scope is pending are not freed by it', async (t) => {
  const arena = newArena()
  let outside: Float32Array | undefined
  const pending = arena.scope(async () => {
    await turn()
    await turn()
  })
  outside = arena.view('float32', 4) // after scope() returned: outside
  await pending
  t.true(arena.owns(outside))
  arena.free(outside)
  outside = undefined
  t.is(live(arena), 0)
})

test('a plain function returning a promise: the scope waits for it and frees what its synchronous part made', async (t) => {
  const arena = newArena()
  let v: Float32Array | undefined
  const pending = arena.scope(() => {
    v = arena.view('float32', 4)
    return turn().then(() => 'done')
  })
  t.true(arena.owns(v))
  t.is(await pending, 'done')
  t.false(arena.owns(v))
})

test('a sync scope inside an async scope returns its result to the async scope', async (t) => {
  const arena = newArena()
  let inner: Float32Array | undefined
  await arena.scope(async () => {
    await turn()
    inner = arena.scope(() => arena.view('float32', 4))
    await turn()
    t.true(arena.owns(inner), 'held by the async scope')
  })
  t.false(arena.owns(inner))
})

test('a non-function fn throws ERR_INVALID_ARG_TYPE and opens no scope', (t) => {
  const arena = newArena()
  for (const bad of [undefined, null, 42, 'fn', {}]) {
    t.throws(() => arena.scope(bad as never), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
    t.throws(() => scope(bad as never), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  }
  const v = arena.view('float32', 4)
  t.true(arena.owns(v), 'no scope is open: nothing to free it')
  arena.free(v)
})

test.serial('the default-arena scope frees the default arena’s hand-outs and returns fn’s result', async (t) => {
  const before = stats().liveAllocations
  let temp: Float32Array | undefined
  const out = scope(() => {
    temp = view('float32', 4)
    return view('float32', 4)
  })
  t.false(defaultArena.owns(temp))
  t.true(defaultArena.owns(out))
  defaultArena.free(out)
  const asyncOut = await scope(async () => {
    await turn()
    view('uint8', 16)
    return 'ok'
  })
  t.is(asyncOut, 'ok')
  t.is(stats().liveAllocations, before)
})

test('scope is typed to return fn’s type (and the promise of an async fn)', async (t) => {
  const arena = newArena()
  const f: Float32Array = arena.scope(() => arena.view('float32', 1))
  const p: Promise<number> = arena.scope(async () => 1)
  const n: number = await p
  t.is(n, 1)
  t.true(arena.owns(f))
})
