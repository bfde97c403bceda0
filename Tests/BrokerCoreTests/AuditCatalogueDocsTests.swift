import BrokerCore
import Foundation
import XCTest

/// `docs/audit.md` and the code say the same: every action the code writes is in the page's table
/// with the outcomes and fields the code's catalogue promises, every action the page lists
/// exists, and the line format the page describes is the one written.
final class AuditCatalogueDocsTests: XCTestCase {
    static let page = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("docs/audit.md")

    /// The rows of the first table after `heading`, as cells without their `|`.
    func table(after heading: String) throws -> [[String]] {
        let text = try String(contentsOf: Self.page, encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let start = try XCTUnwrap(lines.firstIndex(of: heading), "docs/audit.md has no \(heading)")
        let rows = lines[start...].drop { !$0.hasPrefix("|") }.prefix { $0.hasPrefix("|") }
        return rows.dropFirst(2).map { row in
            row.trimmingCharacters(in: .whitespaces).dropFirst().dropLast().split(separator: "|", omittingEmptySubsequences: false)
                .map { $0.trimmingCharacters(in: .whitespaces) }
        }
    }

    /// The `code` spans of a cell, in order.
    func spans(_ cell: String) -> [String] {
        cell.matches(of: /`([^`]+)`/).map { String($0.output.1) }
    }

    func testEveryActionIsDocumentedWithItsOutcomesAndFieldsAndNothingElseIs() throws {
        let rows = try table(after: "## Actions")
        XCTAssertEqual(rows.first?.count, 4)
        let documented = rows.map { row in
            (action: spans(row[0]).first ?? row[0], outcomes: spans(row[1]), names: spans(row[2]))
        }
        XCTAssertEqual(documented.map(\.action), AuditAction.catalogue.map(\.action.rawValue), "the same actions, in the same order")
        for entry in AuditAction.catalogue {
            guard let row = documented.first(where: { $0.action == entry.action.rawValue }) else { continue }
            XCTAssertEqual(row.outcomes, entry.outcomes.map(\.rawValue), "outcomes of \(entry.action)")
            XCTAssertEqual(row.names, entry.names.map(\.rawValue), "names of \(entry.action)")
        }
    }

    func testTheReuseLineIsDocumentedAsDeniedAndNamingTheSession() throws {
        let reuse = try XCTUnwrap(AuditAction.catalogue.first { $0.action == .refreshReuseDetected })
        XCTAssertEqual(reuse.outcomes, [.denied])
        XCTAssertEqual(reuse.names, [.actor, .org, .session, .target])
    }

    func testTheLineFormatTableListsTheKeysWrittenInTheirOrder() throws {
        let keys = try table(after: "## Line format").map { spans($0[0]).first ?? $0[0] }
        let event = AuditEvent(time: Date(timeIntervalSince1970: 0), action: .tokenRefresh, outcome: .success)
        let written = String(decoding: event.jsonLine, as: UTF8.self).matches(of: /"([a-z_]+)":/).map { String($0.output.1) }
        XCTAssertEqual(keys, written)
    }
}
