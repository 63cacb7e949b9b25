//! Where given bytes lie in a 64-byte block, one bit per byte: what the CSV tokeniser and the
//! JSON array scanner look at instead of every byte.

/// For each of `bytes`, a mask of where it is in `block` (bit k: byte k). SSE2 (every x86-64
/// has it): 16 bytes compared at a time.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn byte_masks<const N: usize>(block: &[u8; 64], bytes: [u8; N]) -> [u64; N] {
    use std::arch::x86_64::{__m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
    let mut masks = [0u64; N];
    // SAFETY: SSE2 is part of the x86-64 baseline, so these instructions always exist; each
    // unaligned 16-byte load lies inside the 64-byte block.
    unsafe {
        for part in 0..4 {
            let v = _mm_loadu_si128(block.as_ptr().add(part * 16).cast::<__m128i>());
            for (mask, byte) in masks.iter_mut().zip(bytes) {
                let equal = _mm_cmpeq_epi8(v, _mm_set1_epi8(byte as i8));
                *mask |= u64::from(_mm_movemask_epi8(equal) as u16) << (part * 16);
            }
        }
    }
    masks
}

#[cfg(not(target_arch = "x86_64"))]
pub fn byte_masks<const N: usize>(block: &[u8; 64], bytes: [u8; N]) -> [u64; N] {
    let mut masks = [0u64; N];
    for (k, &b) in block.iter().enumerate() {
        for (mask, byte) in masks.iter_mut().zip(bytes) {
            *mask |= u64::from(b == byte) << k;
        }
    }
    masks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mask_has_the_bits_of_its_byte() {
        let mut block = [b'x'; 64];
        for k in [0, 15, 16, 31, 47, 63] {
            block[k] = b'"';
        }
        block[62] = 0xFF;
        let [quotes, high, absent] = byte_masks(&block, [b'"', 0xFF, b',']);
        assert_eq!(quotes, 1 | 1 << 15 | 1 << 16 | 1 << 31 | 1 << 47 | 1 << 63);
        assert_eq!((high, absent), (1 << 62, 0));
    }
}
