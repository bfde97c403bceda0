import Foundation

/// Seeds that depend on the fixed keys are written by the target itself:
/// `FUZZ_WRITE_SEEDS=Fuzz/Corpus/<Target> .build-fuzz/release/<Target>` writes them and exits
/// (called from `LLVMFuzzerInitialize`). scripts/fuzz.sh --write-seeds does this for every target.
public enum FuzzSeeds {
    public static func writeIfAsked(_ seeds: () -> [(name: String, contents: String)]) {
        guard let directory = ProcessInfo.processInfo.environment["FUZZ_WRITE_SEEDS"] else { return }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            for seed in seeds() {
                try Data(seed.contents.utf8).write(to: URL(fileURLWithPath: "\(directory)/\(seed.name)"))
            }
        } catch {
            fatalError("cannot write seeds to \(directory): \(error)")
        }
        exit(0)
    }
}
