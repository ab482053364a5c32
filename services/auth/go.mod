module switchboard/services/auth

go 1.26

require (
	switchboard/libs v0.0.0
	switchboard/proto v0.0.0
)

replace (
	switchboard/libs => ../../libs
	switchboard/proto => ../../proto
)
