// Errors a request can get, in OpenAI's shape:
//   {"error": {"message": "...", "type": "invalid_request_error", "param": "max_tokens" | null, "code": ... | null}}
// Handlers throw ApiError; the HTTP layer turns it into the status and that body.
#pragma once

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>

namespace quill {

struct ApiError : std::runtime_error {
    int status;
    std::string type, param, code;  // param/code "" => null
    ApiError(int status_, const std::string & message, std::string param_ = "", std::string code_ = "",
             std::string type_ = "")
        : std::runtime_error(message), status(status_), type(type_.empty() ? default_type(status_) : std::move(type_)),
          param(std::move(param_)), code(std::move(code_)) {}

    static std::string default_type(int status) {
        switch (status) {
            case 401: return "authentication_error";
            case 404: return "not_found_error";
            case 413: return "invalid_request_error";
            case 503: return "server_error";
            default: return status >= 500 ? "server_error" : "invalid_request_error";
        }
    }
};

// The body for an error: {"error": {...}}.
inline nlohmann::json api_error_json(const std::string & message, const std::string & type, const std::string & param,
                                     const std::string & code) {
    nlohmann::json e = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
    if (!param.empty()) e["param"] = param;
    if (!code.empty()) e["code"] = code;
    return nlohmann::json{{"error", e}};
}

inline nlohmann::json api_error_json(const ApiError & e) { return api_error_json(e.what(), e.type, e.param, e.code); }

}  // namespace quill
