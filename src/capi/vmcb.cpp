// C API: VMCB handles, reading, field access, JSON.
#include <algorithm>
#include <cstring>
#include <span>

#include "handles.hpp"
#include "nsvm/formats/vmcb_io.hpp"

using nsvm::capi::fail;
using nsvm::capi::guarded;

namespace {

nsvm::formats::Format to_cpp(nsvm_format f) {
    switch (f) {
        case NSVM_FORMAT_RAW: return nsvm::formats::Format::raw;
        case NSVM_FORMAT_JSON: return nsvm::formats::Format::json;
        case NSVM_FORMAT_KVM_DUMP: return nsvm::formats::Format::kvm_dump;
        case NSVM_FORMAT_XEN_DUMP: return nsvm::formats::Format::xen_dump;
        case NSVM_FORMAT_QEMU_DUMP: return nsvm::formats::Format::qemu_dump;
        case NSVM_FORMAT_AUTO: break;
    }
    return nsvm::formats::Format::auto_detect;
}

nsvm_format to_c(nsvm::formats::Format f) {
    switch (f) {
        case nsvm::formats::Format::json: return NSVM_FORMAT_JSON;
        case nsvm::formats::Format::kvm_dump: return NSVM_FORMAT_KVM_DUMP;
        case nsvm::formats::Format::xen_dump: return NSVM_FORMAT_XEN_DUMP;
        case nsvm::formats::Format::qemu_dump: return NSVM_FORMAT_QEMU_DUMP;
        default: return NSVM_FORMAT_RAW;
    }
}

bool known_format(nsvm_format f) { return f >= NSVM_FORMAT_AUTO && f <= NSVM_FORMAT_QEMU_DUMP; }

}  // namespace

namespace nsvm::capi {

/// The field named `name`, or an NSVM_E_UNKNOWN_NAME failure.
nsvm_status lookup_field(const char* name, arch::FieldId& id) {
    if (name == nullptr) return fail(NSVM_E_INVALID_ARGUMENT, "field name is NULL");
    const auto f = arch::find_field(name);
    if (!f) return fail(NSVM_E_UNKNOWN_NAME, std::string("unknown VMCB field '") + name + "'");
    if (arch::info(*f).kind != arch::FieldKind::integer)
        return fail(NSVM_E_INVALID_ARGUMENT, std::string("field '") + name + "' is a byte run, not a number");
    id = *f;
    return NSVM_OK;
}

nsvm_status set_field(arch::Vmcb& v, const char* name, std::uint64_t value) {
    arch::FieldId id{};
    if (const auto st = lookup_field(name, id); st != NSVM_OK) return st;
    if (!arch::Vmcb::fits(id, value))
        return fail(NSVM_E_INVALID_ARGUMENT, std::string("value does not fit field '") + name + "'");
    v.set(id, value);
    return NSVM_OK;
}

}  // namespace nsvm::capi

extern "C" {

nsvm_status nsvm_vmcb_new(nsvm_vmcb** out) {
    return guarded([&] {
        if (out == nullptr) return fail(NSVM_E_INVALID_ARGUMENT, "out is NULL");
        *out = new nsvm_vmcb{};
        return NSVM_OK;
    });
}

nsvm_status nsvm_vmcb_read(const void* data, size_t size, nsvm_format format, const char* source_name,
                           nsvm_vmcb** out) {
    return guarded([&] {
        if (out == nullptr || (data == nullptr && size != 0)) return fail(NSVM_E_INVALID_ARGUMENT, "NULL argument");
        *out = nullptr;
        if (!known_format(format)) return fail(NSVM_E_INVALID_ARGUMENT, "unknown nsvm_format value");
        const auto bytes = std::span(static_cast<const std::uint8_t*>(data), size);
        auto in = nsvm::formats::read_vmcb(bytes, to_cpp(format), source_name ? source_name : "<buffer>");
        if (!in) return fail(NSVM_E_PARSE, nsvm::formats::to_string(in.error()));
        *out = new nsvm_vmcb{in->vmcb, to_c(in->format), in->host, in->given, in->partial};
        return NSVM_OK;
    });
}

nsvm_status nsvm_vmcb_clone(const nsvm_vmcb* vmcb, nsvm_vmcb** out) {
    return guarded([&] {
        if (vmcb == nullptr || out == nullptr) return fail(NSVM_E_INVALID_ARGUMENT, "NULL argument");
        *out = new nsvm_vmcb(*vmcb);
        return NSVM_OK;
    });
}

void nsvm_vmcb_free(nsvm_vmcb* vmcb) { delete vmcb; }

nsvm_format nsvm_vmcb_format(const nsvm_vmcb* vmcb) { return vmcb ? vmcb->format : NSVM_FORMAT_AUTO; }

nsvm_status nsvm_vmcb_get(const nsvm_vmcb* vmcb, const char* field, uint64_t* value) {
    return guarded([&] {
        if (vmcb == nullptr || value == nullptr) return fail(NSVM_E_INVALID_ARGUMENT, "NULL argument");
        nsvm::arch::FieldId id{};
        if (const auto st = nsvm::capi::lookup_field(field, id); st != NSVM_OK) return st;
        *value = vmcb->vmcb.get(id);
        return NSVM_OK;
    });
}

nsvm_status nsvm_vmcb_set(nsvm_vmcb* vmcb, const char* field, uint64_t value) {
    return guarded([&] {
        if (vmcb == nullptr) return fail(NSVM_E_INVALID_ARGUMENT, "vmcb is NULL");
        return nsvm::capi::set_field(vmcb->vmcb, field, value);
    });
}

nsvm_status nsvm_vmcb_page(const nsvm_vmcb* vmcb, uint8_t* page, size_t page_size) {
    return guarded([&] {
        if (vmcb == nullptr || page == nullptr) return fail(NSVM_E_INVALID_ARGUMENT, "NULL argument");
        if (page_size < NSVM_VMCB_SIZE) return fail(NSVM_E_BUFFER_TOO_SMALL, "a VMCB page needs 4096 bytes");
        std::memcpy(page, vmcb->vmcb.page().data(), NSVM_VMCB_SIZE);
        return NSVM_OK;
    });
}

nsvm_status nsvm_vmcb_to_json(const nsvm_vmcb* vmcb, char* buf, size_t buf_size, size_t* needed) {
    return guarded([&] {
        if (vmcb == nullptr || (buf == nullptr && buf_size != 0)) return fail(NSVM_E_INVALID_ARGUMENT, "NULL argument");
        const std::string json = nsvm::formats::write_json(vmcb->vmcb);
        if (needed != nullptr) *needed = json.size() + 1;
        if (buf_size < json.size() + 1) return fail(NSVM_E_BUFFER_TOO_SMALL, "buffer too small for the JSON text");
        std::memcpy(buf, json.c_str(), json.size() + 1);
        return NSVM_OK;
    });
}

}  // extern "C"
