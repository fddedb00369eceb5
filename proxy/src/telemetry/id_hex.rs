//! Lower-case hex for trace and span ids, eight digits at a time (SWAR): one 64-bit word holds
//! eight nibbles spread one per byte, and one add turns them all into ASCII. Every request
//! that carries trace headers writes three ids and reads two, so these run on the data path
//! (callgrind figures in [`super::trace`]'s doc).

/// Spread the eight nibbles of `x` one per byte, most significant nibble in the top byte.
const fn spread(x: u32) -> u64 {
    let mut v = x as u64;
    v = (v | (v << 16)) & 0x0000_ffff_0000_ffff;
    v = (v | (v << 8)) & 0x00ff_00ff_00ff_00ff;
    (v | (v << 4)) & 0x0f0f_0f0f_0f0f_0f0f
}

/// Eight nibble bytes (0..=15) → eight lower-case ASCII digits.
const fn ascii(nibbles: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    // 1 in each byte whose nibble is ≥ 10; `a` − `0` − 10 = 39 is added there.
    let letters = ((nibbles + 6 * ONES) >> 4) & ONES;
    nibbles + 0x30 * ONES + letters * 39
}

/// The sixteen hex digits of `x`, most significant first.
pub fn u64_digits(x: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&ascii(spread((x >> 32) as u32)).to_be_bytes());
    out[8..].copy_from_slice(&ascii(spread(x as u32)).to_be_bytes());
    out
}

/// The thirty-two hex digits of a 128-bit id stored big-endian.
pub fn id128_digits(id: &[u8; 16]) -> [u8; 32] {
    let (hi, lo) = id.split_at(8);
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(&u64_digits(u64::from_be_bytes(hi.try_into().unwrap())));
    out[16..].copy_from_slice(&u64_digits(u64::from_be_bytes(lo.try_into().unwrap())));
    out
}

/// Eight lower-case hex digits → their value; `None` if any byte is not `0-9a-f`.
pub fn parse8(s: &[u8; 8]) -> Option<u32> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x80 * ONES;
    let c = u64::from_be_bytes(*s);
    // Bytes ≥ 0x80 first; below that, `c + (0x80 − lo)` has its high bit set iff c ≥ lo and
    // `c + (0x7f − hi)` iff c > hi, with no carry between bytes.
    let in_range = |lo: u64, hi: u64| {
        let low = c.wrapping_add((0x80 - lo) * ONES);
        let high = c.wrapping_add((0x7f - hi) * ONES);
        low & !high & HIGH
    };
    let digit = in_range(0x30, 0x39);
    let letter = in_range(0x61, 0x66);
    if c & HIGH != 0 || (digit | letter) != HIGH {
        return None;
    }
    // '0'..'9' → low nibble; 'a'..'f' (bit 6 set) → low nibble + 9.
    let mut v = (c & (0x0f * ONES)) + ((c >> 6) & ONES) * 9;
    v = (v | (v >> 4)) & 0x00ff_00ff_00ff_00ff;
    v = (v | (v >> 8)) & 0x0000_ffff_0000_ffff;
    Some(((v | (v >> 16)) & 0xffff_ffff) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: u64) -> String {
        format!("{x:016x}")
    }

    #[test]
    fn u64_digits_match_format_for_every_nibble_in_every_position() {
        for pos in 0..16 {
            for nib in 0..16u64 {
                let x = (nib << (pos * 4)) | (0x0123_4567_89ab_cdef & !(0xf << (pos * 4)));
                assert_eq!(u64_digits(x), reference(x).as_bytes(), "{x:#x}");
            }
        }
        for x in [0, u64::MAX, 0xa0b1_c2d3_e4f5_0617, 0x9999_aaaa_ffff_0000] {
            assert_eq!(u64_digits(x), reference(x).as_bytes());
        }
    }

    #[test]
    fn id128_digits_put_the_high_half_first() {
        let id = 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736u128.to_be_bytes();
        assert_eq!(&id128_digits(&id), b"4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn parse8_round_trips_and_rejects_every_non_digit_byte_in_every_position() {
        for x in [0u32, u32::MAX, 0x0123_4567, 0x89ab_cdef, 0xdead_beef] {
            let s: [u8; 8] = format!("{x:08x}").as_bytes().try_into().unwrap();
            assert_eq!(parse8(&s), Some(x));
        }
        let good = *b"09afa0f9";
        for pos in 0..8 {
            for byte in 0..=255u8 {
                let mut s = good;
                s[pos] = byte;
                let valid = byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte);
                let want = valid
                    .then(|| u32::from_str_radix(std::str::from_utf8(&s).unwrap(), 16).unwrap());
                assert_eq!(parse8(&s), want, "byte {byte:#x} at {pos}");
            }
        }
    }
}
