// What a guest memory access, a delivery through the guest's IDT or an IRET
// ran into (SvmCpu::GuestFault), built the same way by every step that
// faults (svm_cpu_delivery.cpp, svm_cpu_iret.cpp). Internal to src/cpu.
#pragma once

#include "nsvm/arch/bits.hpp"
#include "nsvm/cpu/svm_cpu.hpp"

namespace nsvm::cpu::detail {

/// Something the model does not follow: the registers stay as they were.
[[nodiscard]] inline SvmCpu::GuestFault not_modelled(const char* note) noexcept {
    SvmCpu::GuestFault f;
    f.kind = SvmCpu::GuestFault::Kind::not_modelled;
    f.note = note;
    return f;
}

/// An exception (EVENTINJ type 3); the error code is pushed only for the
/// vectors that have one (APM 8.4).
[[nodiscard]] inline SvmCpu::GuestFault exception_fault(std::uint8_t vector, std::uint32_t error_code,
                                                        std::uint64_t cr2 = 0) noexcept {
    SvmCpu::GuestFault f;
    f.kind = SvmCpu::GuestFault::Kind::exception;
    f.exception.vector = vector;
    f.exception.type = 3;
    f.exception.has_error = arch::exception_has_error_code(vector);
    f.exception.error_code = error_code;
    f.exception.cr2 = cr2;
    return f;
}

/// A segment descriptor's hidden part in the VMCB's packed attribute form
/// (APM 15.5.1 / B-2: bits 7:0 = descriptor bits 47:40, 11:8 = 55:52).
[[nodiscard]] inline arch::Segment segment_from_descriptor(std::uint16_t selector, std::uint64_t d) noexcept {
    arch::Segment s;
    s.selector = selector;
    s.attrib = static_cast<std::uint16_t>(((d >> 40) & 0xFF) | (((d >> 52) & 0xF) << 8));
    std::uint32_t limit = static_cast<std::uint32_t>((d & 0xFFFF) | (((d >> 48) & 0xF) << 16));
    if ((s.attrib & arch::seg_attr::G) != 0) limit = (limit << 12) | 0xFFF;
    s.limit = limit;
    s.base = ((d >> 16) & 0xFFFFFF) | (((d >> 56) & 0xFF) << 24);
    return s;
}

}  // namespace nsvm::cpu::detail
