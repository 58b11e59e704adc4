package activitytest

// JavaMurmur2 is Kafka's Utils.murmur2, written out here so that tests check
// the producers' partitioners against Kafka's own definition, not against
// themselves.
func JavaMurmur2(data []byte) int32 {
	const seed, m, r = uint32(0x9747b28c), uint32(0x5bd1e995), 24
	length := len(data)
	h := seed ^ uint32(length)
	for i := 0; i+4 <= length; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := length &^ 3
	switch length % 4 {
	case 3:
		h ^= uint32(data[tail+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[tail+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[tail])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// JavaDefaultPartition is the partition Kafka's default partitioner picks
// for a record with key.
func JavaDefaultPartition(key string, partitions int) int32 {
	return (JavaMurmur2([]byte(key)) & 0x7fffffff) % int32(partitions)
}
