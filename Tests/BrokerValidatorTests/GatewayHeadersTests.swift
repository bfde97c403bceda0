import BrokerValidator
import XCTest

/// Which client-sent `x-sliderule-*` headers a gateway must keep from the nodes.
final class GatewayHeadersTests: XCTestCase {
    func testEverySlideRuleNameIsReservedButTheClientsOwn() {
        let names = [
            "Authorization", "x-sliderule-account", "X-SlideRule-Org-Roles", "X-SLIDERULE-ROLES", "x-sliderule-anything",
            "x-sliderule-", "x-sliderule-account", "X-SlideRule-Client", "x-sliderule-service", "x-sliderule-timestamp",
            "x-sliderule-signature", "x-sliderule-clientx", "x-slideruleaccount", "sliderule-account",
        ]
        XCTAssertEqual(
            GatewayHeaders.reservedNames(in: names),
            ["x-sliderule-account", "x-sliderule-org-roles", "x-sliderule-roles", "x-sliderule-anything", "x-sliderule-",
             "x-sliderule-clientx"])
        XCTAssertTrue(GatewayHeaders.identity.allSatisfy(GatewayHeaders.isReserved))
        XCTAssertFalse(GatewayHeaders.client.contains(where: GatewayHeaders.isReserved))
    }
}
