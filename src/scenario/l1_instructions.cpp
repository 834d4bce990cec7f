// The L1 instructions a scenario step names without operands, with the
// nested engine's entry point for each (`l1: NAME`, docs/scenarios.md).
#include <array>

#include "nsvm/scenario/scenario.hpp"

namespace nsvm::scenario {

namespace {
using nested::Vcpu;
constexpr std::array kL1Instructions = {
    L1Instruction{"vmrun", &Vcpu::l1_vmrun},     L1Instruction{"vmload", &Vcpu::l1_vmload},
    L1Instruction{"vmsave", &Vcpu::l1_vmsave},   L1Instruction{"stgi", &Vcpu::l1_stgi},
    L1Instruction{"clgi", &Vcpu::l1_clgi},       L1Instruction{"invlpga", &Vcpu::l1_invlpga},
    L1Instruction{"vmmcall", &Vcpu::l1_vmmcall}, L1Instruction{"skinit", &Vcpu::l1_skinit},
    L1Instruction{"rsm", &Vcpu::rsm},            L1Instruction{"iret", &Vcpu::l1_iret},
};
}  // namespace

std::span<const L1Instruction> l1_instructions() noexcept { return kL1Instructions; }

}  // namespace nsvm::scenario
