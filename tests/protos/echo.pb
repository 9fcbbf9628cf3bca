
­

echo.protoshadowtap.test"F
Item
name (	Rname
count (Rcount
price (Rprice"q
EchoRequest
text (	Rtext
repeat (Rrepeat
	fail_with (RfailWith
delay_ms (RdelayMs"©
	EchoReply
text (	Rtext
sequence (Rsequence(
item (2.shadowtap.test.ItemRitem*
items (2.shadowtap.test.ItemRitems
server (	Rserver2Ÿ
Echo?
Unary.shadowtap.test.EchoRequest.shadowtap.test.EchoReplyH
ServerStream.shadowtap.test.EchoRequest.shadowtap.test.EchoReply0H
ClientStream.shadowtap.test.EchoRequest.shadowtap.test.EchoReply(B
Bidi.shadowtap.test.EchoRequest.shadowtap.test.EchoReply(0bproto3