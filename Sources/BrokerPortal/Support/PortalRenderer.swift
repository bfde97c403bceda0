import BrokerCrypto
import Foundation
import HTTPTypes
import Hummingbird
import Mustache

/// The compiled-in templates and stylesheet, parsed once. Every value a template shows goes
/// through `{{name}}`, which HTML-escapes it (`PortalTemplateTests` refuses the unescaped forms).
struct PortalRenderer: Sendable {
    /// Every template, by the name pages and partials use. `PortalTemplateTests` holds this list
    /// to the files of `Resources/Templates`.
    static let templateSources: [String: [UInt8]] = [
        "head": PackageResources.head_mustache,
        "foot": PackageResources.foot_mustache,
        "signin": PackageResources.signin_mustache,
        "signup": PackageResources.signup_mustache,
        "github_device": PackageResources.github_device_mustache,
        "signout": PackageResources.signout_mustache,
        "account": PackageResources.account_mustache,
        "organization": PackageResources.organization_mustache,
        "admin_nav": PackageResources.admin_nav_mustache,
        "admin_users": PackageResources.admin_users_mustache,
        "admin_user": PackageResources.admin_user_mustache,
        "admin_orgs": PackageResources.admin_orgs_mustache,
        "admin_keys": PackageResources.admin_keys_mustache,
        "admin_audit": PackageResources.admin_audit_mustache,
        "admin_invites": PackageResources.admin_invites_mustache,
        "error": PackageResources.error_mustache,
    ]

    static let stylesheet: [UInt8] = PackageResources.portal_css
    /// Its URL names its content, so browsers may keep it forever: a new release is a new URL.
    static let stylesheetPath = "/portal/style-\(Digest.sha256Hex(String(decoding: stylesheet, as: UTF8.self)).prefix(16)).css"

    static let shared = PortalRenderer()

    let library: MustacheLibrary

    init() {
        var templates: [String: MustacheTemplate] = [:]
        for (name, source) in Self.templateSources {
            do {
                templates[name] = try MustacheTemplate(string: String(decoding: source, as: UTF8.self))
            } catch {
                // A template is part of the binary: a broken one is a build defect, caught by the tests.
                fatalError("portal template \(name) does not parse: \(error)")
            }
        }
        library = MustacheLibrary(templates: templates)
    }

    /// The HTML of template `name` rendered with `view`.
    func html(_ name: String, _ view: Any) -> String {
        guard let html = library.render(view, withTemplate: name) else { fatalError("no portal template \(name)") }
        return html
    }

    /// The page `name` with `view`, as a response with the portal's headers.
    func page(_ name: String, _ view: Any, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        let html = html(name, view)
        var fields = headers
        fields[.contentType] = "text/html; charset=utf-8"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(string: html)))
    }
}
