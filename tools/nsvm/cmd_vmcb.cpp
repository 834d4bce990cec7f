// nsvm decode / nsvm convert: every field by name, and format conversion.
#include <fstream>
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "warnings.hpp"
#include "nsvm/formats/decode.hpp"
#include "nsvm/formats/vmcb_io.hpp"
#include "nsvm/util/text.hpp"

namespace nsvm::cli {
namespace {

formats::ReadResult read_vmcb_file(const std::string& file, const std::string& format) {
    auto fmt_id = formats::parse_format(format);
    if (!fmt_id) throw Exit{kBadInput, fmt::format("--format {}: unknown format (auto, raw, json, kvm-dump, xen-dump)", util::printable(format))};
    const std::string data = read_input(file);
    const auto bytes = std::span(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
    auto in = formats::read_vmcb(bytes, *fmt_id, input_name(file));
    if (!in) fail_input(in.error());
    return std::move(*in);
}

struct DecodeOptions {
    std::string file;
    std::string format = "auto";
    bool json = false;
};

struct ConvertOptions {
    std::string file;
    std::string format = "auto";
    std::string to;
    std::string output = "-";
};

int run_decode(const DecodeOptions& o) {
    const auto in = read_vmcb_file(o.file, o.format);
    if (o.json) {  // the fields, and what the reader said about them
        auto j = formats::decode_json(in.vmcb);
        j["warnings"] = warnings_json(input_warnings(in));
        std::cout << j.dump(2) << '\n';
    } else {
        print_warnings(input_warnings(in));
        std::cout << formats::decode_text(in.vmcb, color_enabled());
    }
    return kOk;
}

int run_convert(const ConvertOptions& o) {
    const auto in = read_vmcb_file(o.file, o.format);
    print_warnings(input_warnings(in));
    std::string out;
    if (o.to == "json") {
        out = formats::write_json(in.vmcb);
        if (!out.empty() && out.back() != '\n') out.push_back('\n');
    } else if (o.to == "raw") {
        const auto raw = formats::write_raw(in.vmcb);
        out.assign(raw.begin(), raw.end());
        if (o.output == "-" && color_enabled()) {
            throw Exit{kBadInput, "refusing to write a raw VMCB to a terminal; use -o FILE or a pipe"};
        }
    } else {
        throw Exit{kBadInput, fmt::format("--to {}: expected json or raw", util::printable(o.to))};
    }
    if (o.output == "-") {
        std::cout.write(out.data(), static_cast<std::streamsize>(out.size()));
    } else {
        write_output(o.output, std::span<const char>(out.data(), out.size()));
    }
    return kOk;
}

const Registrar reg_decode{20, [](CLI::App& app, int& status) {
    static DecodeOptions o;
    auto* sub = app.add_subcommand("decode", "Print every field of a VMCB by name, with its bits decoded "
                                             "(intercepts, EFER/CR flags, EVENTINJ, exit code).");
    sub->add_option("file", o.file, "VMCB file (any input format), - for stdin")->required();
    sub->add_option("--format", o.format, "auto, raw, json, kvm-dump, xen-dump")->capture_default_str();
    sub->add_flag("--json", o.json, "decoded fields as JSON");
    sub->callback([&status] { status = run_decode(o); });
}};

const Registrar reg_convert{21, [](CLI::App& app, int& status) {
    static ConvertOptions o;
    auto* sub = app.add_subcommand("convert", "Convert a VMCB between formats (any input; JSON or raw output).");
    sub->add_option("file", o.file, "VMCB file (any input format), - for stdin")->required();
    sub->add_option("--format", o.format, "input format: auto, raw, json, kvm-dump, xen-dump, qemu-dump, hexdump")->capture_default_str();
    sub->add_option("--to", o.to, "output format: json or raw")->required();
    sub->add_option("-o,--output", o.output, "output file (default stdout)");
    sub->callback([&status] { status = run_convert(o); });
}};

}  // namespace
}  // namespace nsvm::cli
