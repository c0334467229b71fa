// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// The shape of OMG Network's PlasmaFramework as `custody wallet bind` meets it, written for
/// custody's tests (no third-party code): one proxy-less contract with many external functions
/// (blocks, deposits, vaults, exit games, exit queues), whose dispatcher solc compiles to a
/// binary search over the selectors. Only `authority()` and `submitBlock(bytes32)` matter to the
/// Authority; the rest give the code the many selectors a framework has.
///
/// `updateExitBond56989(uint256)` (selector 0x0000699c) and `updatePiggybackBond7(uint256)`
/// (0x00addb62) were named by trying numbers until the selector began with zero bytes: solc pushes such a
/// selector with a shorter PUSH (PUSH2, PUSH3), which the selector scan must still find.
contract PlasmaFrameworkShape {
    struct ExitOutput {
        uint256 position;
        bytes32 outputId;
    }

    address public immutable authority;
    address public immutable maintainer;
    uint256 public immutable minExitPeriod;
    uint256 public constant childBlockInterval = 1000;

    uint256 public nextChildBlock = 1000;
    uint256 public nextDeposit = 1;
    bool public isChildChainActivated;
    string public version = "2.0.0";
    uint256 public exitBond = 14;
    uint256 public piggybackBond = 15;

    mapping(uint256 => bytes32) public blocks;
    mapping(uint256 => uint256) public blockTimestamps;
    mapping(uint256 => address) public vaults;
    mapping(address => uint256) public vaultToId;
    mapping(uint256 => address) public exitGames;
    mapping(address => uint256) public exitGameToTxType;
    mapping(uint256 => uint8) public protocols;
    mapping(bytes32 => bool) public exitsQueues;
    mapping(bytes32 => uint256) public outputsFinalizations;
    mapping(bytes32 => uint256[]) private queues;

    event BlockSubmitted(uint256 blockNumber);
    event ChildChainActivated(address authority);
    event VaultRegistered(uint256 vaultId, address vaultAddress);
    event ExitGameRegistered(uint256 txType, address exitGameAddress, uint8 protocol);
    event ExitQueueAdded(uint256 vaultId, address token);
    event ExitQueued(uint168 exitId, uint256 priority);
    event ProcessedExitsNum(uint256 processedNum, uint256 vaultId, address token);

    error Unauthorized(address caller);

    modifier only(address who) {
        if (msg.sender != who) revert Unauthorized(msg.sender);
        _;
    }

    constructor(address authority_, address maintainer_, uint256 minExitPeriod_) {
        authority = authority_;
        maintainer = maintainer_;
        minExitPeriod = minExitPeriod_;
    }

    function activateChildChain() external only(authority) {
        require(!isChildChainActivated, "Child chain already activated");
        isChildChainActivated = true;
        emit ChildChainActivated(authority);
    }

    function submitBlock(bytes32 blockRoot) external only(authority) {
        uint256 submittedBlockNumber = nextChildBlock;
        blocks[submittedBlockNumber] = blockRoot;
        blockTimestamps[submittedBlockNumber] = block.timestamp;
        nextChildBlock += childBlockInterval;
        nextDeposit = 1;
        emit BlockSubmitted(submittedBlockNumber);
    }

    function submitDepositBlock(bytes32 blockRoot) external returns (uint256) {
        require(vaultToId[msg.sender] != 0, "Not a vault");
        require(nextDeposit < childBlockInterval, "Exceeded limit of deposits per child block interval");
        uint256 blknum = nextChildBlock - childBlockInterval + nextDeposit;
        blocks[blknum] = blockRoot;
        blockTimestamps[blknum] = block.timestamp;
        nextDeposit++;
        return blknum;
    }

    function nextDepositBlock() external view returns (uint256) {
        return nextChildBlock - childBlockInterval + nextDeposit;
    }

    function isDeposit(uint256 blockNum) external pure returns (bool) {
        return blockNum % childBlockInterval != 0;
    }

    function getMaintainer() external view returns (address) {
        return maintainer;
    }

    function setVersion(string calldata newVersion) external only(maintainer) {
        version = newVersion;
    }

    function getVersion() external view returns (string memory) {
        return version;
    }

    function registerVault(uint256 vaultId, address vaultAddress) external only(maintainer) {
        require(vaultId != 0 && vaults[vaultId] == address(0), "Invalid vault id");
        vaults[vaultId] = vaultAddress;
        vaultToId[vaultAddress] = vaultId;
        emit VaultRegistered(vaultId, vaultAddress);
    }

    function getVault(uint256 vaultId) external view returns (address) {
        return vaults[vaultId];
    }

    function isVaultSafeToUse(address vaultAddress) external view returns (bool) {
        return vaultToId[vaultAddress] != 0;
    }

    function registerExitGame(uint256 txType, address exitGame, uint8 protocol)
        external
        only(maintainer)
    {
        require(txType != 0 && exitGames[txType] == address(0), "Invalid tx type");
        exitGames[txType] = exitGame;
        exitGameToTxType[exitGame] = txType;
        protocols[txType] = protocol;
        emit ExitGameRegistered(txType, exitGame, protocol);
    }

    function isExitGameSafeToUse(address exitGame) external view returns (bool) {
        return exitGameToTxType[exitGame] != 0;
    }

    function addExitQueue(uint256 vaultId, address token) external {
        bytes32 key = keccak256(abi.encode(vaultId, token));
        require(!exitsQueues[key], "Exit queue exists");
        exitsQueues[key] = true;
        emit ExitQueueAdded(vaultId, token);
    }

    function hasExitQueue(uint256 vaultId, address token) external view returns (bool) {
        return exitsQueues[keccak256(abi.encode(vaultId, token))];
    }

    function enqueue(
        uint256 vaultId,
        address token,
        uint64 exitableAt,
        ExitOutput calldata output,
        uint168 exitId
    ) external returns (uint256) {
        require(exitGameToTxType[msg.sender] != 0, "Not an exit game");
        uint256 priority = (uint256(exitableAt) << 192) | (output.position << 168) | exitId;
        queues[keccak256(abi.encode(vaultId, token))].push(priority);
        emit ExitQueued(exitId, priority);
        return priority;
    }

    function getNextExit(uint256 vaultId, address token) external view returns (uint256) {
        uint256[] storage q = queues[keccak256(abi.encode(vaultId, token))];
        require(q.length > 0, "Exit queue is empty");
        return q[q.length - 1];
    }

    function processExits(
        uint256 vaultId,
        address token,
        uint168 topExitId,
        uint256 maxExitsToProcess,
        bytes32 senderData
    ) external {
        uint256[] storage q = queues[keccak256(abi.encode(vaultId, token))];
        uint256 processed;
        while (q.length > 0 && processed < maxExitsToProcess) {
            if (topExitId != 0 && uint168(q[q.length - 1]) != topExitId) break;
            q.pop();
            processed++;
        }
        senderData;
        emit ProcessedExitsNum(processed, vaultId, token);
    }

    function isOutputFinalized(bytes32 outputId) external view returns (bool) {
        return outputsFinalizations[outputId] != 0;
    }

    function isAnyInputFinalizedByOtherExit(bytes32[] calldata outputIds, uint168 exitId)
        external
        view
        returns (bool)
    {
        for (uint256 i = 0; i < outputIds.length; i++) {
            uint256 by = outputsFinalizations[outputIds[i]];
            if (by != 0 && by != exitId) return true;
        }
        return false;
    }

    function flagOutputFinalized(bytes32 outputId, uint168 exitId) external {
        require(exitGameToTxType[msg.sender] != 0, "Not an exit game");
        outputsFinalizations[outputId] = exitId;
    }

    function batchFlagOutputsFinalized(bytes32[] calldata outputIds, uint168 exitId) external {
        require(exitGameToTxType[msg.sender] != 0, "Not an exit game");
        for (uint256 i = 0; i < outputIds.length; i++) {
            outputsFinalizations[outputIds[i]] = exitId;
        }
    }

    function updateExitBond56989(uint256 bond) external only(maintainer) {
        exitBond = bond;
    }

    function updatePiggybackBond7(uint256 bond) external only(maintainer) {
        piggybackBond = bond;
    }
}
