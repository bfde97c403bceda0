/// The failure (or attempt) times of each key of one throttle counter, bounded in memory
/// without ever forgetting a time that is still inside the window.
///
/// At most ``maximum`` keys have a counter of their own. Only keys whose times have all left the
/// window are forgotten, which loses nothing. When every counter still holds a time inside the
/// window, a key without a counter of its own shares the **overflow** counter, limited like any
/// other: so a flood of fresh keys can neither push a throttled key out (and start it afresh) nor
/// escape the limit itself; it meets the overflow's limit. A key that gets a counter of its own
/// while the overflow still holds times starts with those times, as any of them may have been
/// its own; so does a key judged before it has one. Every key is therefore counted at least as
/// often as it failed within the window, however the table filled.
///
/// ```swift
/// var table = ThrottleTable(maximum: 10_000)
/// let (times, _) = table.times(of: "alice", cutoff: now - 900)   // refuse when times.count >= limit
/// table.record("alice", at: now, cutoff: now - 900)
/// ```
struct ThrottleTable {
    let maximum: Int
    private var counters: [String: FailureTimes] = [:]
    private var overflow = FailureTimes()
    /// No counter's latest time is older than this: forgetting the expired keys before the cutoff
    /// has passed it would free nothing, so a full table is not scanned on every new key.
    private var oldestLatest = -Double.infinity

    init(maximum: Int) {
        self.maximum = max(1, maximum)
    }

    /// How many keys have a counter of their own.
    var count: Int { counters.count }

    /// How many times the overflow counter holds (all keys without a counter share them).
    var overflowCount: Int { overflow.count }

    /// The times that count for `key` after `cutoff`: its own, or the overflow's while it has no
    /// counter. `overflows`: a failure of `key` would be recorded in the overflow counter now,
    /// because every counter is in use.
    mutating func times(of key: String, cutoff: Double) -> (times: FailureTimes, overflows: Bool) {
        if var times = counters[key] {
            times.dropExpired(through: cutoff)
            counters[key] = times.isEmpty ? nil : times
            if !times.isEmpty { return (times, false) }
        }
        overflow.dropExpired(through: cutoff)
        return (overflow, !hasRoom(cutoff: cutoff))
    }

    /// Counts a time for `key` at `now`.
    /// - Returns: the count of the counter it went to, before and after.
    @discardableResult
    mutating func record(_ key: String, at now: Double, cutoff: Double) -> (before: Int, after: Int) {
        if var times = counters[key] {
            times.dropExpired(through: cutoff)
            let before = times.count
            times.append(now)
            counters[key] = times
            return (before, times.count)
        }
        overflow.dropExpired(through: cutoff)
        let before = overflow.count
        if hasRoom(cutoff: cutoff) {
            var times = overflow
            times.append(now)
            counters[key] = times
            return (before, times.count)
        }
        overflow.append(now)
        return (before, overflow.count)
    }

    /// Forgets `key`'s own counter (a right password starts a pair afresh).
    mutating func remove(_ key: String) {
        counters[key] = nil
    }

    /// Whether a new key can have a counter of its own, forgetting expired keys if need be.
    private mutating func hasRoom(cutoff: Double) -> Bool {
        if counters.count < maximum { return true }
        guard cutoff >= oldestLatest else { return false }
        counters = counters.compactMapValues { times in
            var times = times
            times.dropExpired(through: cutoff)
            return times.isEmpty ? nil : times
        }
        oldestLatest = counters.values.lazy.map(\.newest).min() ?? -Double.infinity
        return counters.count < maximum
    }
}
