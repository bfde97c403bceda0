// The token rules, claims and clock moved to BrokerValidator so that gateways share them with
// the broker; re-exported so that code importing BrokerCore keeps seeing them where it did.
@_exported import BrokerValidator
