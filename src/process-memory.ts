/**
 * How a pathembed process asks glibc's malloc for memory: the GLIBC_TUNABLES value its launchers
 * (bin/pathembed, `npm run demo` / `pathembed`, the images in deploy/) set when the environment
 * has none.
 *
 * Why: a slide read writes tens of MiB of decoded frames, and a process pays for new memory on
 * its first write, one page fault per 4 KiB page. On the 2-core VM of docs/benchmarks.md a fault
 * costs about 11 us, so a fresh process's first slide (8,000 faults for a 117-patch grid) spent
 * more time faulting than decoding. With these settings the frame buffers, multipart bodies and
 * patches come from malloc's heap, which glibc backs with 2 MiB transparent huge pages (THP in
 * `madvise` mode, the usual default), and freed ones stay there for the next:
 * - `glibc.malloc.hugetlb=1`: madvise(MADV_HUGEPAGE) on the heap malloc grows;
 * - `glibc.malloc.mmap_threshold=33554432` (32 MiB, glibc's largest): allocations below it come
 *   from that heap instead of a private mapping each, which would be 4 KiB pages, faulted anew
 *   every time.
 * Measured: 8,000 -> 1,900 faults and 153 -> 105 ms for that first slide; warm reads 88 -> 77 ms.
 * The price is memory: freed heap stays mapped, on 2 MiB pages, so a job's peak RSS ran up to
 * about 600 MiB higher in the pipeline benchmark. GLIBC_TUNABLES= (empty) turns it all off.
 *
 * glibc reads GLIBC_TUNABLES once, when the process starts, so no code can set it from inside;
 * musl and macOS ignore it. V8's own heap is not malloc's, and keeps its 4 KiB pages.
 */

/** The value the launchers set. test/unit/process-memory.test.ts checks that each carries it. */
export const GLIBC_MALLOC_TUNABLES = 'glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=33554432';

/** `env` with GLIBC_MALLOC_TUNABLES added, unless it sets GLIBC_TUNABLES already (its own choice wins). */
export function withMallocTunables(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return env.GLIBC_TUNABLES === undefined ? { ...env, GLIBC_TUNABLES: GLIBC_MALLOC_TUNABLES } : env;
}
