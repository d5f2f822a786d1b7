# SPDX-License-Identifier: MIT
"""The damage the journal tests do to a journal made by make_journal (m1..m5, a release of
1..2, m6, m7, all in segment 1): m7 torn 20 bytes into it (past its header), and one byte
of m4's payload flipped. Returns the byte offsets of m7 and m4 in the segment."""
import os


def tear_and_flip(seg, sizes):
    """@p sizes: record size by seq, from `switchyard journal inspect --json`."""
    last_off = os.path.getsize(seg) - sizes[7]
    os.truncate(seg, last_off + 20)
    # m4 starts after m1, m2 and m3; every record is the same size but for its digits
    # (1-digit seqs here).
    m4_off = 3 * sizes[3]
    with open(seg, "r+b") as f:
        f.seek(m4_off + 12)
        b = f.read(1)
        f.seek(m4_off + 12)
        f.write(bytes([b[0] ^ 0x40]))
    return last_off, m4_off
