"""Which parts of a running process's executable are resident, by ELF section and by crate.

Why: the idle tray's extra PSS over a bare Tauri tray is almost all its own executable's pages
(clean code and read-only data, mapped on first touch plus the kernel's fault-around
neighbours). Knowing which crates' code is resident tells what a change could save; the file
size alone does not.

How: /proc/PID/maps gives the executable's mappings and their file offsets, /proc/PID/pagemap
the present bit of each page (bit 63; readable by root), `readelf -SW` the sections and
`nm -C -S` the symbols with their sizes. A symbol's resident bytes are its bytes on present
pages; a symbol goes to the first crate named in its demangled path that is not core, alloc or
std (so `core::ptr::drop_in_place<ema_core::engine::Engine>` counts for ema_core). Standard
library plus binutils."""
import bisect
import os
import re
import struct
import subprocess

PAGE = os.sysconf("SC_PAGE_SIZE")
GENERIC = {"core", "alloc", "std", "impl", "dyn", "mut", "const", "T", "F", "u8", "str", "usize", "i32", "u32",
           "u64", "i64", "bool", "f64", "_", "unsafe", "extern", "fn", "as", "for", "closure", "C"}


def _resident_file_pages(pid, exe):
    """File page indexes of `exe` present in `pid`'s memory."""
    real = os.path.realpath(exe)
    ranges = []
    with open(f"/proc/{pid}/maps", encoding="utf-8") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and os.path.realpath(parts[5].strip()) == real:
                start, end = (int(x, 16) for x in parts[0].split("-"))
                ranges.append((start, end, int(parts[2], 16)))
    present = set()
    with open(f"/proc/{pid}/pagemap", "rb") as f:
        for start, end, offset in ranges:
            n = (end - start) // PAGE
            f.seek(start // PAGE * 8)
            data = f.read(n * 8)
            for i in range(len(data) // 8):
                if struct.unpack_from("<Q", data, i * 8)[0] >> 63:
                    present.add(offset // PAGE + i)
    return present


def _sections(exe):
    """(name, vaddr, file offset, size) of each allocated section with file contents."""
    out = subprocess.run(["readelf", "-SW", exe], capture_output=True, text=True, check=True).stdout
    secs = []
    for line in out.splitlines():
        m = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+\S+\s+(\S*)", line)
        if m and "A" in m.group(6) and m.group(2) != "NOBITS":
            secs.append((m.group(1), int(m.group(3), 16), int(m.group(4), 16), int(m.group(5), 16)))
    return secs


def crate_of(name):
    """The crate a demangled symbol is charged to."""
    # Identifiers that start a path (not `ptr` in `core::ptr::...`).
    for word in re.findall(r"(?:^|[<(&\s,*\[])([A-Za-z_][A-Za-z0-9_]*)::", name):
        if word not in GENERIC:
            return word
    return "(std)" if re.search(r"\b(core|alloc|std)::", name) else "(other)"


def _resident_bytes(start, size, present):
    total, pos, end = 0, start, start + size
    while pos < end:
        page_end = (pos // PAGE + 1) * PAGE
        chunk = min(end, page_end) - pos
        if pos // PAGE in present:
            total += chunk
        pos += chunk
    return total


def residency(pid, exe, top=20):
    """Resident bytes of `exe` in `pid`, by section and by crate (code and data symbols)."""
    present = _resident_file_pages(pid, exe)
    secs = _sections(exe)
    by_section = []
    for name, _, off, size in secs:
        r = _resident_bytes(off, size, present)
        by_section.append({"section": name, "size_kb": size // 1024, "resident_kb": r // 1024})
    addrs = sorted((vaddr, off, size) for _, vaddr, off, size in secs)
    starts = [a[0] for a in addrs]
    syms = subprocess.run(["nm", "-C", "-S", "--defined-only", exe], capture_output=True, text=True).stdout
    crates = {}
    for line in syms.splitlines():
        parts = line.split(" ", 3)
        if len(parts) != 4 or parts[2].lower() not in ("t", "r", "d"):
            continue
        vaddr, size = int(parts[0], 16), int(parts[1], 16)
        i = bisect.bisect_right(starts, vaddr) - 1
        if i < 0 or size == 0 or vaddr >= addrs[i][0] + addrs[i][2]:
            continue
        off = vaddr - addrs[i][0] + addrs[i][1]
        c = crates.setdefault(crate_of(parts[3]), [0, 0])
        c[0] += size
        c[1] += _resident_bytes(off, size, present)
    ranked = sorted(crates.items(), key=lambda kv: -kv[1][1])[:top]
    return {
        "resident_kb": len(present) * PAGE // 1024,
        "by_section": sorted(by_section, key=lambda s: -s["resident_kb"]),
        "by_crate": [{"crate": k, "size_kb": v[0] // 1024, "resident_kb": v[1] // 1024} for k, v in ranked],
    }
