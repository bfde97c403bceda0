import BrokerCrypto
import Foundation
import HTTPTypes
import Yams

/// The contract in the repository (`openapi.yaml`) and a checker of live answers against it:
/// documented status, media type, required headers and the JSON Schema of the body. The
/// validator knows the keywords the contract's response schemas use, and fails loudly on any
/// other, so that a schema it cannot check never passes by accident.
///
/// ```swift
/// let contract = try OpenAPIContract.load()
/// XCTAssertEqual(contract.violations(of: answer), [])
/// ```
struct OpenAPIContract {
    let document: JSONValue

    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }
    static var canonicalFile: URL { repositoryRoot.appendingPathComponent("Sources/BrokerServer/Resources/openapi.yaml") }

    static func load() throws -> OpenAPIContract {
        let text = try String(contentsOf: canonicalFile, encoding: .utf8)
        return OpenAPIContract(document: try convert(Yams.load(yaml: text) as Any))
    }

    /// What Yams builds, as the JSON the contract stands for.
    static func convert(_ node: Any) throws -> JSONValue {
        switch node {
        case is NSNull: return .null
        case let value as Bool: return .bool(value)
        case let value as Int: return .integer(Int64(value))
        case let value as Double: return .number(value)
        case let value as String: return .string(value)
        case let values as [Any]: return .array(try values.map(convert))
        case let members as [AnyHashable: Any]:
            var object: [String: JSONValue] = [:]
            for (key, value) in members {
                guard let name = key.base as? String else { throw ContractError("a mapping key that is not a string: \(key)") }
                object[name] = try convert(value)
            }
            return .object(object)
        default: throw ContractError("a YAML node of type \(type(of: node))")
        }
    }

    var paths: [String: JSONValue] { document["paths"]?.object ?? [:] }

    static let methods = ["get", "put", "post", "delete", "patch", "head", "options", "trace"]

    /// `"GET /api/admin/users/{username}"` for every documented operation, without trailing slashes.
    var operations: Set<String> {
        var result: Set<String> = []
        for (path, item) in paths {
            for method in Self.methods where item[method] != nil {
                result.insert("\(method.uppercased()) \(Self.withoutTrailingSlash(path))")
            }
        }
        return result
    }

    static func withoutTrailingSlash(_ path: String) -> String {
        path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
    }

    /// The documented operation a request reaches: the path template whose segments match,
    /// literal segments preferred over parameters.
    func operation(_ method: HTTPRequest.Method, _ uri: String) -> (template: String, operation: JSONValue)? {
        let path = uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? uri
        let segments = path.split(separator: "/")
        var best: (template: String, operation: JSONValue, literals: Int)?
        for (template, item) in paths {
            guard let operation = item[method.rawValue.lowercased()] else { continue }
            let parts = template.split(separator: "/")
            guard parts.count == segments.count else { continue }
            var literals = 0
            var matches = true
            for (part, segment) in zip(parts, segments) {
                if part.hasPrefix("{") && part.hasSuffix("}") { continue }
                if part == segment { literals += 1 } else { matches = false; break }
            }
            if matches, literals > best?.literals ?? -1 { best = (template, operation, literals) }
        }
        return best.map { ($0.template, $0.operation) }
    }

    /// Everything about one answer that the contract does not allow; empty when it keeps it.
    func violations(of answer: LiveAnswer) -> [String] {
        let label = "\(answer.method) \(answer.uri) → \(answer.status.code)"
        guard let (template, operation) = operation(answer.method, answer.uri) else {
            return ["\(label): no documented operation"]
        }
        // `default`: what an operation passes on from elsewhere (the provisioner's answers).
        guard let documented = operation["responses"]?[String(answer.status.code)] ?? operation["responses"]?["default"] else {
            return ["\(label): status not documented for \(answer.method) \(template)"]
        }
        do {
            let response = try resolve(documented)
            var problems: [String] = []
            for (name, header) in response["headers"]?.object ?? [:] {
                let header = try resolve(header)
                guard let fieldName = HTTPField.Name(name), let value = answer.headers[fieldName] else {
                    if header["required"] == .bool(true) { problems.append("\(label): no \(name) header") }
                    continue
                }
                if let schema = header["schema"] {
                    problems += try validate(.string(value), schema, at: "header \(name)").map { "\(label): \($0)" }
                }
            }
            guard let content = response["content"]?.object else {
                if !answer.body.isEmpty { problems.append("\(label): a body where the contract documents none") }
                return problems
            }
            let contentType = answer.headers[.contentType] ?? ""
            let essence = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            guard let media = content[contentType] ?? content[essence] else {
                return problems + ["\(label): content type \(contentType) is not one of \(content.keys.sorted())"]
            }
            guard let schema = media["schema"] else { return problems }
            let value: JSONValue
            if essence.hasSuffix("json") {
                do {
                    value = try JSONParser.parse(answer.body, maxDepth: 32)
                } catch {
                    return problems + ["\(label): the body is not JSON"]
                }
            } else if essence.hasSuffix("yaml") {
                value = try Self.convert(Yams.load(yaml: String(decoding: answer.body, as: UTF8.self)) as Any)
            } else {
                value = .string(String(decoding: answer.body, as: UTF8.self))
            }
            problems += try validate(value, schema, at: "body").map { "\(label): \($0)" }
            return problems
        } catch {
            return ["\(label): \(error)"]
        }
    }

    /// Follows `$ref` (`#/components/...`) until a node without one.
    func resolve(_ node: JSONValue) throws -> JSONValue {
        var node = node
        var hops = 0
        while case .string(let reference)? = node["$ref"] {
            guard reference.hasPrefix("#/"), hops < 16 else { throw ContractError("unsupported $ref \(reference)") }
            var target = document
            for name in reference.dropFirst(2).split(separator: "/") {
                guard let next = target[String(name)] else { throw ContractError("dangling $ref \(reference)") }
                target = next
            }
            node = target
            hops += 1
        }
        return node
    }

    static let knownKeywords: Set<String> = [
        "$ref", "type", "enum", "const", "properties", "required", "additionalProperties", "items", "pattern",
        "minLength", "maxLength", "minimum", "minItems", "maxItems", "uniqueItems", "allOf", "anyOf", "oneOf",
        "description", "examples", "default",
    ]

    /// The JSON Schema 2020-12 errors of `value`, for the keywords in ``knownKeywords``.
    func validate(_ value: JSONValue, _ schemaNode: JSONValue, at location: String) throws -> [String] {
        let schema = try resolve(schemaNode)
        guard let keywords = schema.object else { throw ContractError("\(location): a schema that is not an object") }
        if let unknown = keywords.keys.first(where: { !Self.knownKeywords.contains($0) }) {
            throw ContractError("\(location): the test's validator does not know the keyword \(unknown)")
        }
        var errors: [String] = []
        if let types = keywords["type"] {
            let names = types.array?.compactMap(\.string) ?? types.string.map { [$0] } ?? []
            if !names.contains(where: { Self.has(value, type: $0) }) {
                return ["\(location): \(Self.describe(value)) is not of type \(names.joined(separator: "|"))"]
            }
        }
        if let options = keywords["enum"]?.array, !options.contains(value) {
            errors.append("\(location): \(Self.describe(value)) is not one of the enumerated values")
        }
        if let constant = keywords["const"], constant != value {
            errors.append("\(location): \(Self.describe(value)) is not \(Self.describe(constant))")
        }
        if case .string(let text) = value {
            let length = Int64(text.unicodeScalars.count)
            if let minimum = keywords["minLength"]?.int, length < minimum { errors.append("\(location): shorter than \(minimum)") }
            if let maximum = keywords["maxLength"]?.int, length > maximum { errors.append("\(location): longer than \(maximum)") }
            if let pattern = keywords["pattern"]?.string {
                let expression = try NSRegularExpression(pattern: pattern)
                if expression.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) == nil {
                    errors.append("\(location): \(Self.describe(value)) does not match \(pattern)")
                }
            }
        }
        if case .integer(let number) = value, let minimum = keywords["minimum"]?.int, number < minimum {
            errors.append("\(location): \(number) is below \(minimum)")
        }
        if case .array(let items) = value {
            if let minimum = keywords["minItems"]?.int, Int64(items.count) < minimum { errors.append("\(location): fewer than \(minimum) items") }
            if let maximum = keywords["maxItems"]?.int, Int64(items.count) > maximum { errors.append("\(location): more than \(maximum) items") }
            if let itemSchema = keywords["items"] {
                for (index, item) in items.enumerated() { errors += try validate(item, itemSchema, at: "\(location)[\(index)]") }
            }
        }
        if case .object(let members) = value {
            let properties = keywords["properties"]?.object ?? [:]
            for name in keywords["required"]?.array?.compactMap(\.string) ?? [] where members[name] == nil {
                errors.append("\(location): no member \(name)")
            }
            for (name, member) in members {
                if let propertySchema = properties[name] {
                    errors += try validate(member, propertySchema, at: "\(location).\(name)")
                } else if keywords["additionalProperties"] == .bool(false) {
                    errors.append("\(location): member \(name) is not allowed")
                } else if let additional = keywords["additionalProperties"], additional.object != nil {
                    errors += try validate(member, additional, at: "\(location).\(name)")
                }
            }
        }
        for part in keywords["allOf"]?.array ?? [] { errors += try validate(value, part, at: location) }
        if let options = keywords["anyOf"]?.array {
            let passing = try options.filter { try validate(value, $0, at: location).isEmpty }
            if passing.isEmpty { errors.append("\(location): \(Self.describe(value)) matches none of anyOf") }
        }
        if let options = keywords["oneOf"]?.array {
            let passing = try options.filter { try validate(value, $0, at: location).isEmpty }
            if passing.count != 1 { errors.append("\(location): matches \(passing.count) of oneOf, not exactly one") }
        }
        return errors
    }

    static func has(_ value: JSONValue, type: String) -> Bool {
        switch (type, value) {
        case ("null", .null), ("boolean", .bool), ("integer", .integer), ("number", .integer), ("number", .number),
            ("string", .string), ("array", .array), ("object", .object):
            true
        default: false
        }
    }

    static func describe(_ value: JSONValue) -> String {
        switch value {
        case .string(let text): "\"\(text.prefix(60))\""
        case .integer(let number): String(number)
        case .bool(let flag): String(flag)
        case .null: "null"
        case .number(let number): String(number)
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// One answer as the contract checker sees it.
struct LiveAnswer {
    var method: HTTPRequest.Method
    var uri: String
    var status: HTTPResponse.Status
    var headers: HTTPFields
    var body: [UInt8]

    var json: JSONValue? { try? JSONParser.parse(body, maxDepth: 32) }
}

struct ContractError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension JSONValue {
    fileprivate var int: Int64? {
        switch self {
        case .integer(let value): value
        case .number(let value): Int64(exactly: value)
        default: nil
        }
    }
}
