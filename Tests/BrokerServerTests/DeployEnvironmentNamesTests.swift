import BrokerCommands
import Foundation
import XCTest

/// Every `BROKER_*` name in `deploy/` is one the broker knows: the broker refuses to start on
/// an unknown one, so a misspelt name in a recipe would stop every replica it deploys.
final class DeployEnvironmentNamesTests: XCTestCase {
    func testEveryBrokerVariableInTheRecipesIsAKnownSetting() throws {
        let known = Set(EnvironmentNames.settings)
        var seen: Set<String> = []
        for file in try DeployRecipes.allFiles() {
            guard let text = try? DeployRecipes.text(file) else { continue }
            for match in text.matches(of: /BROKER_[A-Z0-9_]+/) {
                let name = String(match.0)
                seen.insert(name)
                XCTAssertTrue(known.contains(name), "deploy/\(file) names \(name), which the broker does not know")
            }
        }
        // The recipes do set variables: a test that found none would prove nothing.
        XCTAssertTrue(seen.isSuperset(of: ["BROKER_ISSUER", "BROKER_KEY_ENCRYPTION_KEY_FILE", "BROKER_DATABASE_URL", "BROKER_CONFIG"]), "\(seen.sorted())")
    }
}
