//! The size-class table: one `const` table indexed by a `#[repr(u8)]` enum.
//!
//! Requests of 1 ..= [`MAX_SMALL_SIZE`] bytes are rounded up to a *class*; a class's
//! payload is the largest request it serves. Up to 4 KiB the classes step by 64 bytes
//! (up to 512) and then four per power of two; above 4 KiB there are exactly four classes
//! per power of two (×1.25, ×1.5, ×1.75, ×2), so no class wastes more than 25% of any
//! request above 4 KiB. The compile-time checks at the end of this file enforce that.

/// Number of size classes.
pub const NUM_CLASSES: usize = 68;
/// Largest request served by a size class; larger requests take the large path.
pub const MAX_SMALL_SIZE: usize = 16 << 20;
/// Up to this size classes step by 64 bytes (up to 512), then four per power of two.
const TABLE_LIMIT: usize = 4096;
/// Requests up to this size are looked up in a table; above it the class is computed.
const LOOKUP_LIMIT: usize = 64 << 10;
/// Index of the first class above [`TABLE_LIMIT`].
const FIRST_GEOMETRIC: usize = 20;

macro_rules! size_classes {
    ($($name:ident = $size:expr,)*) => {
        /// A size class. The discriminant is the dense class index, the name gives the
        /// class payload in bytes (the largest request it serves).
        #[repr(u8)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum SizeClass {
            $(
                #[doc = concat!("Requests up to ", stringify!($size), " bytes.")]
                $name,
            )*
        }

        /// Payload size of every class, indexed by [`SizeClass::index`].
        pub const CLASS_SIZES: [usize; NUM_CLASSES] = [$($size,)*];

        impl SizeClass {
            /// Every class, in index order.
            pub const ALL: [Self; NUM_CLASSES] = [$(Self::$name,)*];
        }
    };
}

size_classes! {
B64 = 64,
B128 = 128,
B192 = 192,
B256 = 256,
B320 = 320,
B384 = 384,
B448 = 448,
B512 = 512,
B640 = 640,
B768 = 768,
B896 = 896,
B1024 = 1024,
B1280 = 1280,
B1536 = 1536,
B1792 = 1792,
B2048 = 2048,
B2560 = 2560,
B3072 = 3072,
B3584 = 3584,
B4096 = 4096,
B5120 = 5120,
B6144 = 6144,
B7168 = 7168,
B8192 = 8192,
B10240 = 10240,
B12288 = 12288,
B14336 = 14336,
B16384 = 16384,
B20480 = 20480,
B24576 = 24576,
B28672 = 28672,
B32768 = 32768,
B40960 = 40960,
B49152 = 49152,
B57344 = 57344,
B65536 = 65536,
B81920 = 81920,
B98304 = 98304,
B114688 = 114688,
B131072 = 131072,
B163840 = 163840,
B196608 = 196608,
B229376 = 229376,
B262144 = 262144,
B327680 = 327680,
B393216 = 393216,
B458752 = 458752,
B524288 = 524288,
B655360 = 655360,
B786432 = 786432,
B917504 = 917504,
B1048576 = 1048576,
B1310720 = 1310720,
B1572864 = 1572864,
B1835008 = 1835008,
B2097152 = 2097152,
B2621440 = 2621440,
B3145728 = 3145728,
B3670016 = 3670016,
B4194304 = 4194304,
B5242880 = 5242880,
B6291456 = 6291456,
B7340032 = 7340032,
B8388608 = 8388608,
B10485760 = 10485760,
B12582912 = 12582912,
B14680064 = 14680064,
B16777216 = 16777216,}

/// Class index per `2^shift` bytes of request: `table[(size - 1) >> shift]` (class
/// payloads are multiples of 64, checked below).
const fn lookup<const N: usize>(shift: u32) -> [u8; N] {
    let mut table = [0u8; N];
    let mut step = 0;
    let mut class = 0;
    while step < N {
        let max_request = (step + 1) << shift;
        while CLASS_SIZES[class] < max_request {
            class += 1;
        }
        table[step] = class as u8;
        step += 1;
    }
    table
}

/// Classes of requests up to [`LOOKUP_LIMIT`], per 64 bytes (1 KiB).
const LOOKUP: [u8; LOOKUP_LIMIT >> 6] = lookup(6);

impl SizeClass {
    /// The class serving a request of `size` bytes, or `None` for 0 and for requests
    /// above [`MAX_SMALL_SIZE`] (the large path).
    #[inline]
    #[must_use]
    pub const fn from_request(size: usize) -> Option<Self> {
        match index_for_request(size) {
            Some(index) => Self::from_index(index),
            None => None,
        }
    }

    /// The class with dense index `index`.
    #[inline]
    #[must_use]
    pub const fn from_index(index: usize) -> Option<Self> {
        if index < NUM_CLASSES { Some(Self::ALL[index]) } else { None }
    }

    /// Dense index of the class, `0 .. NUM_CLASSES`.
    #[inline]
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Largest request this class serves.
    #[inline]
    #[must_use]
    pub const fn payload_size(self) -> usize {
        CLASS_SIZES[self as usize]
    }
}

/// The index of the class serving a request of `size` bytes (as
/// [`SizeClass::from_request`]), computed without going through the enum: the allocation
/// fast path indexes its tables with it directly, so no table load stands between the
/// request and the class (`SizeClass::ALL[index]` would be one more dependent load).
#[inline(always)]
pub(crate) const fn index_for_request(size: usize) -> Option<usize> {
    if size == 0 || size > MAX_SMALL_SIZE {
        return None;
    }
    let index = if size <= LOOKUP_LIMIT {
        // One load (a bit scan and a shift by its result cost more on the hot paths).
        LOOKUP[(size - 1) >> 6] as usize
    } else {
        // size - 1 lies in [2^e, 2^(e+1)); its two bits below the top pick one of
        // the four classes of that power of two.
        let n = size - 1;
        let e = (usize::BITS - 1 - n.leading_zeros()) as usize;
        let quarter = (n >> (e - 2)) & 3;
        FIRST_GEOMETRIC + (e - 12) * 4 + quarter
    };
    // SAFETY: `LOOKUP` holds class indices, and for 64 KiB < size <= 16 MiB, e is 16..=23,
    // so the index is at most 20 + 11 * 4 + 3 = 67 (the tests compare every class). Telling
    // the compiler lets the fast paths index their per-class arrays without bounds checks.
    unsafe { std::hint::assert_unchecked(index < NUM_CLASSES) };
    Some(index)
}

// Compile-time checks of the table.
const _: () = {
    assert!(CLASS_SIZES[0] == 64);
    assert!(CLASS_SIZES[NUM_CLASSES - 1] == MAX_SMALL_SIZE);
    assert!(CLASS_SIZES[FIRST_GEOMETRIC - 1] == TABLE_LIMIT);
    assert!(NUM_CLASSES <= u8::MAX as usize);
    let mut i = 0;
    while i < NUM_CLASSES {
        // Discriminants are the dense indices.
        assert!(SizeClass::ALL[i] as usize == i);
        // Payloads are multiples of 64 (so blocks stay on the 64-byte header grid).
        assert!(CLASS_SIZES[i].is_multiple_of(64));
        if i > 0 {
            let prev = CLASS_SIZES[i - 1];
            assert!(CLASS_SIZES[i] > prev);
            // Waste bound: the smallest request of a class above 4 KiB is prev + 1; the
            // class payload may exceed it by at most 25%.
            if prev >= TABLE_LIMIT {
                assert!((CLASS_SIZES[i] - (prev + 1)) * 4 <= prev + 1);
            }
        }
        i += 1;
    }
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_maps_to_the_smallest_class_that_fits() {
        let mut sizes: Vec<usize> = (1..=20_000).collect();
        for &c in &CLASS_SIZES {
            sizes.extend([c - 1, c, c + 1]);
        }
        for size in sizes.into_iter().filter(|&s| s <= MAX_SMALL_SIZE) {
            let class = SizeClass::from_request(size).unwrap();
            assert!(class.payload_size() >= size, "{size} -> {class:?}");
            if class.index() > 0 {
                assert!(CLASS_SIZES[class.index() - 1] < size, "{size} -> {class:?} not tight");
            }
        }
    }

    #[test]
    fn zero_and_oversized_requests_have_no_class() {
        assert_eq!(SizeClass::from_request(0), None);
        assert_eq!(SizeClass::from_request(MAX_SMALL_SIZE + 1), None);
        assert_eq!(SizeClass::from_request(usize::MAX), None);
        assert_eq!(SizeClass::from_request(MAX_SMALL_SIZE), Some(SizeClass::B16777216));
    }

    #[test]
    fn no_class_wastes_more_than_a_quarter_above_4_kib() {
        for size in (4097..=MAX_SMALL_SIZE).step_by(997).chain([4097, 1_048_577, 12 << 20]) {
            let payload = SizeClass::from_request(size).unwrap().payload_size();
            assert!((payload - size) * 4 <= size, "{size} -> {payload}");
        }
    }

    #[test]
    fn tensor_sizes_land_in_tight_classes() {
        assert_eq!(SizeClass::from_request(1_048_577).unwrap().payload_size(), 1_310_720);
        assert_eq!(SizeClass::from_request(3 << 19).unwrap().payload_size(), 3 << 19);
        assert_eq!(SizeClass::from_request(6144).unwrap().payload_size(), 6144);
        assert_eq!(SizeClass::from_request(70_000).unwrap().payload_size(), 81_920);
    }

    #[test]
    fn request_indices_match_the_classes() {
        for size in (0..=20_000).chain((4097..=MAX_SMALL_SIZE + 1).step_by(4093)).chain([MAX_SMALL_SIZE, usize::MAX]) {
            assert_eq!(index_for_request(size), SizeClass::from_request(size).map(SizeClass::index), "{size}");
        }
    }

    #[test]
    fn indices_round_trip() {
        for (i, class) in SizeClass::ALL.iter().enumerate() {
            assert_eq!(class.index(), i);
            assert_eq!(SizeClass::from_index(i), Some(*class));
        }
        assert_eq!(SizeClass::from_index(NUM_CLASSES), None);
    }
}
