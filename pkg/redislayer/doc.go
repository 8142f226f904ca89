// Package redislayer holds a gateway's go-redis parts: the channel layers on
// Redis pub/sub (RedisLayer, also behind Sentinel with FollowSentinels) and
// on Redis Cluster's sharded pub/sub (ClusterLayer), the presence heartbeats
// that list every replica's rooms (Presence), and the cache of each room's
// newest frame (RedisFrameCache).
//
// The layers satisfy rooms.Layer; the rest depends only on the small
// interfaces declared here (RoomLister, FrameSource), which *rooms.Hub
// satisfies, never on the hub itself.
package redislayer
