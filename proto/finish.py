"""The finish reason between its enum (`dilaserve.core.steps.FinishReason`) and the proto's."""

from __future__ import annotations

from dilaserve.core.steps import FinishReason
from proto import dilaserve_pb2 as pb

TO_PB = {
    FinishReason.EOS: pb.FINISH_REASON_EOS,
    FinishReason.LENGTH: pb.FINISH_REASON_LENGTH,
    FinishReason.CANCELLED: pb.FINISH_REASON_CANCELLED,
}
FROM_PB = {value: reason for reason, value in TO_PB.items()}
