// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// The part of OMG Network's PlasmaFramework that the Authority serves, written for custody's
/// tests and rehearsal (no third-party code): the authority is fixed at deployment, and only it
/// may submit a child-chain block, numbered from 1000 in steps of 1000.
contract PlasmaAuthority {
    address public immutable authority;
    uint256 public nextChildBlock = 1000;
    mapping(uint256 => bytes32) public blocks;

    event BlockSubmitted(uint256 blockNumber);

    constructor(address authority_) {
        authority = authority_;
    }

    function submitBlock(bytes32 blockRoot) external {
        require(msg.sender == authority, "Caller address is unauthorized");
        blocks[nextChildBlock] = blockRoot;
        emit BlockSubmitted(nextChildBlock);
        nextChildBlock += 1000;
    }
}
