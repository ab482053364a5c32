package grpcapi

import (
	"context"

	authv1 "switchboard/proto/switchboard/auth/v1"
	"switchboard/services/auth/authority"
)

// Recheck implements AuthService.
func (s *Server) Recheck(ctx context.Context, r *authv1.RecheckRequest) (*authv1.RecheckResponse, error) {
	in := make([]authority.Access, len(r.GetAccesses()))
	for i, ac := range r.GetAccesses() {
		in[i] = authority.Access{UserID: ac.GetUserId(), ConversationID: ac.GetConversationId()}
	}
	ended, revoked, err := s.a.Recheck(ctx, r.GetSessionIds(), in)
	if err != nil {
		return nil, s.toStatus(ctx, "Recheck", err)
	}
	out := make([]*authv1.Access, len(revoked))
	for i, ac := range revoked {
		out[i] = &authv1.Access{UserId: ac.UserID, ConversationId: ac.ConversationID}
	}
	return &authv1.RecheckResponse{EndedSessionIds: ended, RevokedAccesses: out}, nil
}
