// The known-valid VMCB the generic repair takes field values from.
#include "nsvm/arch/intercepts.hpp"
#include "nsvm/repair/repair.hpp"

namespace nsvm::repair {

arch::Vmcb reference_vmcb() noexcept {
    using arch::FieldId;
    arch::Vmcb v;
    v.set_intercept(arch::intercept::VMRUN);
    v.set_intercept(arch::intercept::VMMCALL);
    v.set(FieldId::asid, 1);
    v.set(FieldId::iopm_base_pa, 0x10000);
    v.set(FieldId::msrpm_base_pa, 0x14000);
    v.set_segment(arch::Seg::cs, {0x8, 0xA9B, 0xFFFFFFFF, 0});
    v.set_segment(arch::Seg::ss, {0x10, 0xC93, 0xFFFFFFFF, 0});
    v.set(FieldId::efer, 0x1D00);
    v.set(FieldId::cr0, 0x80050033);
    v.set(FieldId::cr4, 0x6F8);
    v.set(FieldId::cr3, 0x1000);
    v.set(FieldId::dr6, 0xFFFF0FF0);
    v.set(FieldId::dr7, 0x400);
    v.set(FieldId::rflags, 0x2);
    v.set(FieldId::rip, 0x400000);
    v.set(FieldId::g_pat, 0x0007040600070406ULL);
    return v;
}

}  // namespace nsvm::repair
